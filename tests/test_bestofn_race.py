"""``flotilla race --samples N --select …`` as a user runs it: real git, real subprocess attempts, a real store,
and for ``pairwise`` a judge over loopback to the fake provider; ``flotilla show`` prints the selection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from test_race_support import CHECK, make_repo

FLOTILLA = str(Path(sys.executable).parent / "flotilla")

# Each attempt takes the next free slot and makes that slot's change to calc.py (all of them pass CHECK).
SLOTTED = """import os, pathlib, sys
changes = sys.argv[2].split("|")
for k, change in enumerate(changes):
    try:
        os.close(os.open(os.path.join(sys.argv[1], f"slot{k}"), os.O_CREAT | os.O_EXCL))
        break
    except FileExistsError:
        continue
p = pathlib.Path("calc.py"); p.write_text(p.read_text().replace("a - b", change))
print("made the change", change)
"""


def slotted_agent(tmp_path: Path, *changes: str) -> str:
    script = tmp_path / "slotted.py"
    script.write_text(SLOTTED)
    (tmp_path / "slots").mkdir()
    return f"cmd:{sys.executable} {script} {tmp_path / 'slots'} '{'|'.join(changes)}'"


def flotilla(repo: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    return subprocess.run([FLOTILLA, *args], cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**env, "FLOTILLA_STORE": str(repo.parent / "store.db"), "HOME": str(home),
                               "COLUMNS": "200"})


def test_samples_with_vote_picks_the_biggest_cluster_and_show_says_why(tmp_path):
    repo = make_repo(tmp_path / "r")
    agent = slotted_agent(tmp_path, "a + b", "a  +  b", "b + a")
    done = flotilla(repo, "race", "Fix add", "--agent", agent, "--samples", "3", "--select", "vote",
                    "--check", CHECK, "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert [a["name"] for a in outcome["attempts"]] != [] and len(outcome["attempts"]) == 3
    selection = outcome["selection"]
    assert selection["strategy"] == "vote" and selection["calls"] == 0
    assert selection["reason"].startswith("2 of 3 passing attempts made this change")
    assert re.sub(r"\s+", " ", (repo / "calc.py").read_text()).count("return a + b") == 1
    assert outcome["attempts"][0]["name"] == outcome["winner"]
    assert outcome["attempts"][0]["reason"].startswith("picked by vote: 2 of 3")
    shown = flotilla(repo, "show", outcome["race_id"], home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for words in ("selection vote", "no model calls", "cluster of 2", "cluster of 1", "a1", "a2", "a3"):
        assert words in shown.stdout


def test_pairwise_asks_the_judge_one_match_at_a_time(tmp_path, fake_provider):
    def compare(body: dict) -> dict:
        text = body["messages"][0]["content"]
        text = text if isinstance(text, str) else text[0]["text"]
        a, b = text.split('<attempt label="B">')
        better = "B" if "b + a" in b else "A"
        return {"text": json.dumps({"better": better, "reason": "commutes the operands"}),
                "input_tokens": 1000, "output_tokens": 100}

    fp = fake_provider({"judge": compare})
    (tmp_path / ".config" / "flotilla").mkdir(parents=True)
    (tmp_path / ".config" / "flotilla" / "config.toml").write_text(
        f'[providers.fake]\nkind = "anthropic"\nbase_url = "{fp.url}"\n'
        '[models."fake:judge"]\ninput = 1.0\noutput = 10.0\n')
    repo = make_repo(tmp_path / "r")
    agent = slotted_agent(tmp_path, "a + b", "b + a", "a  +  b")
    done = flotilla(repo, "race", "Fix add", "--agent", agent, "-n", "3", "--select", "pairwise",
                    "--judge", "fake:judge", "--check", CHECK, "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    selection = outcome["selection"]
    assert "b + a" in (repo / "calc.py").read_text()
    assert selection["calls"] == 2 == fp.count("judge")  # three contenders, two matches
    assert abs(selection["cost_usd"] - 2 * (1000 * 1 + 100 * 10) / 1e6) < 1e-9
    assert all("made the change" in r.body["messages"][0]["content"] for r in fp.received)  # summaries shown
    assert len([line for line in selection["log"] if " vs " in line]) == 2
    assert "tournament of 3 passing attempts in 2 rounds" in selection["reason"]


def test_select_needs_its_judge_and_names_the_fix(tmp_path):
    repo = make_repo(tmp_path / "r")
    for args, words in ((["--select", "pairwise"], "needs a judge model: add --judge MODEL"),
                        (["--select", "vote", "--judge", "opus"], "--judge would not be used"),
                        (["--select", "best"], "--select must be one of checks, checks+judge, pairwise, vote")):
        bad = flotilla(repo, "race", "Fix add", "--agent", "cmd:true", "--check", CHECK, *args, home=tmp_path)
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
