"""External CLIs as race workers, metered: each attempt through its own gateway and key, its tokens and
cost in the run store, its command and output shown by `flotilla show RUN ATTEMPT`, and what the CLI
wrote for itself never committed. A small Python program stands in for aider here (it speaks Chat
Completions to ``OPENAI_API_BASE`` as litellm does); tests/test_external_real.py runs the real CLIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flotilla import Session
from flotilla.errors import UserError
from flotilla.kernel._cli_env import cli_model
from flotilla.models.catalog import Catalog
from flotilla.patterns._race_plan import RaceConfig, build_plans
from flotilla.store import SQLiteStore
from flotilla.testing.fake_provider import FakeProvider
from test_race_cli import FLOTILLA
from test_race_support import CHECK, alive, make_repo, sh

FAKE_AIDER = """import json, os, pathlib, sys, urllib.request
model, spec = sys.argv[1], sys.argv[2]
assert spec.startswith("- "), spec  # a Markdown bullet arrived whole, not as an option
body = {"model": model.split("/", 1)[1], "messages": [{"role": "user", "content": spec}]}
request = urllib.request.Request(os.environ["OPENAI_API_BASE"] + "/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json",
                                  "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
for _ in range(2):  # two calls: a budget spent by the first refuses the second
    answer = json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"]
p = pathlib.Path("calc.py"); p.write_text(p.read_text().replace("a - b", answer))
pathlib.Path(".aider.chat.history.md").write_text("history")
pathlib.Path(".aider.tags.cache.v4").mkdir()
print("\\x1b[32mdone\\x1b[0m with", model)
"""


def project(tmp_path: Path, url: str, *, direct: bool = False) -> Path:
    repo = make_repo(tmp_path / "r")
    (repo / ".gitignore").unlink()
    sh(repo, "git", "commit", "-qam", "no ignore file")
    cli = tmp_path / "fake_aider.py"
    cli.write_text(FAKE_AIDER)
    (repo / "flotilla.toml").write_text(
        f'[providers.fakeoai]\nkind = "openai"\nbase_url = "{url}/v1"\napi_key_env = "FAKE_KEY"\n\n'
        '[models."fakeoai:gpt-test"]\ninput = 2.0\noutput = 10.0\n\n'
        f'[race.agents.aider]\ncommand = "{sys.executable} {cli} {{model}} {{spec}}"\nkind = "aider"\n'
        f"direct = {'true' if direct else 'false'}\n")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "configure")
    return repo


def race(repo: Path, **kw):
    store = SQLiteStore(repo.parent / "store.db")
    session = Session(project=repo, durable=False, store=store)
    return session.race_sync("- make add add", check=CHECK, models=["fakeoai:gpt-test"], agent="aider", **kw), store


def test_a_metered_external_attempt_has_tokens_cost_and_a_clean_diff(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-upstream-secret")
    with FakeProvider({"gpt-test": {"text": "a + b"}}) as fp:
        repo = project(tmp_path, fp.url)
        outcome, store = race(repo, budget_usd=1.0)
        winner = outcome.winner
        assert winner is not None and outcome.merged, [a.error for a in outcome.attempts]
        assert winner.input_tokens > 0 and winner.output_tokens > 0 and winner.cost_usd and winner.cost_usd > 0
        sent = [r for r in fp.received if r.path == "/v1/chat/completions"]
        assert sent and sent[0].body["model"] == "gpt-test"
        assert sent[0].headers["authorization"] == "Bearer sk-upstream-secret"  # the CLI never saw this key
    files = sh(repo, "git", "ls-tree", "-r", "--name-only", "HEAD").split()
    assert sorted(files) == ["calc.py", "flotilla.toml", "test_calc.py"]  # no .aider*, no .gitignore
    ran = store.events(winner.run_id, "ExternalRan")[0]
    assert ran["exit_code"] == 0 and ran["metered"] and "done with openai/gpt-test" in ran["output"]
    assert "\x1b" not in ran["output"] and "sk-" not in ran["command"] and "flt-" not in json.dumps(ran)
    shown = subprocess.run([*FLOTILLA, "show", outcome.race_id, "a1"], cwd=repo,
                           capture_output=True, text=True, env={"FLOTILLA_STORE": str(repo.parent / "store.db"),
                                                                "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "fake_aider.py" in shown.stdout and "exit code 0" in shown.stdout and "done with" in shown.stdout
    assert "$0.0000" not in shown.stdout and "—" not in shown.stdout.split("total")[-1]


def test_a_direct_external_attempt_shows_its_cost_as_unknown(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    with FakeProvider({"gpt-test": {"text": "a + b"}}) as fp:
        repo = project(tmp_path, fp.url, direct=True)
        monkeypatch.setenv("OPENAI_API_BASE", fp.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        outcome, _ = race(repo)
    assert outcome.winner is not None and outcome.winner.cost_usd is None and not outcome.winner.metered


def test_a_metered_attempt_over_its_budget_is_refused_by_the_gateway(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    with FakeProvider({"gpt-test": {"text": "a + b"}}) as fp:
        repo = project(tmp_path, fp.url)
        outcome, store = race(repo, budget_usd=1e-9)
        assert fp.count() == 1  # admitted while nothing was spent; the second call found the key spent
    assert outcome.winner is None and "HTTP Error 429" in outcome.attempts[0].error
    assert store.usage([outcome.attempts[0].run_id])[0]["calls"] == 1


def test_a_template_without_model_refuses_m_and_models_are_named_as_each_cli_knows_them() -> None:
    config = RaceConfig(agents={"mine": "mytool --message {spec}"})
    with pytest.raises(UserError, match=r"has no \{model\}, so -m foo would change nothing"):
        build_plans(["foo", "bar"], agent="mine", config=config)
    assert [p.model for p in build_plans([], agent="mine", config=config)] == [""]
    catalog = Catalog.load({})
    sonnet = catalog.resolve("sonnet").split(":", 1)[1]
    assert cli_model("codex", "sonnet", catalog, metered=True) == sonnet
    assert cli_model("aider", "sonnet", catalog, metered=True) == f"openai/{sonnet}"
    assert cli_model("aider", "sonnet", catalog, metered=False) == f"anthropic/{sonnet}"
    assert cli_model(None, "sonnet", catalog, metered=False) == "sonnet"
    with pytest.raises(UserError, match="kind 'nope' is not one of"):
        build_plans([], agent="x", config=RaceConfig(agents={"x": {"command": "x {spec}", "kind": "nope"}}))


def test_preflight_finds_a_missing_cli_and_warns_of_an_old_one_before_any_worktree(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = bin_dir / "codex"
    old.write_text("#!/bin/sh\necho 'codex-cli 0.1.0'\n")
    old.chmod(0o755)
    repo = project(tmp_path, "http://127.0.0.1:9")
    session = Session(project=repo, durable=False, store=SQLiteStore(tmp_path / "store.db"))
    from flotilla.patterns._preflight import preflight

    def plans(agent: str):
        return build_plans(["fakeoai:gpt-test"], agent=agent, config=RaceConfig())

    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    warnings = preflight(plans("codex"), check=CHECK, agents={}, settings=session.settings, catalog=session.catalog)
    assert any("codex 0.1.0 is older than 0.171.0" in w for w in warnings), warnings
    with pytest.raises(UserError, match="'gemini' is not found on PATH"):
        session.race_sync("fix it", check=CHECK, models=["fakeoai:gpt-test"], agent="gemini")
    assert not (repo / ".flotilla" / "worktrees").exists() and session.store.list_runs() == []


def test_a_metered_cli_is_not_confined_away_from_its_gateway(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    repo = project(tmp_path, "http://127.0.0.1:9")
    with (repo / "flotilla.toml").open("a") as f:
        f.write("\n[sandbox]\nexternal = true\n")
    session = Session(project=repo, durable=False, store=SQLiteStore(tmp_path / "store.db"))
    with pytest.raises(UserError, match="would cut it off from the gateway that meters it"):
        session.race_sync("fix it", check=CHECK, models=["fakeoai:gpt-test"], agent="aider", allow_dirty=True)


SLOW_ONCE = """import os, pathlib, sys, time
marks = pathlib.Path(sys.argv[1])
if not (marks / "first").exists():  # the first run waits to be killed with flotilla
    (marks / "first").write_text(str(os.getpid()))
    time.sleep(60)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def test_a_metered_attempt_killed_with_flotilla_resumes_and_is_metered(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "slow_once.py").write_text(SLOW_ONCE)
    with FakeProvider({"gpt-test": {"text": "a + b"}}) as fp:
        repo = project(tmp_path, fp.url)
        toml = (repo / "flotilla.toml").read_text().replace(
            f'command = "{sys.executable} ', f'command = "{sys.executable} {tmp_path / "slow_once.py"} {marks} ')
        (repo / "flotilla.toml").write_text(toml)
        sh(repo, "git", "commit", "-qam", "slow once")
        env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db")}
        (tmp_path / "spec.md").write_text("- make add add\n")
        proc = subprocess.Popen([*FLOTILLA, "race", "--spec-file", str(tmp_path / "spec.md"), "--agent", "aider",
                                 "-m", "fakeoai:gpt-test", "--check", CHECK, "--json"],
                                cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while not ((marks / "first").exists() and (marks / "first").read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        cli = int((marks / "first").read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10  # the CLI dies with flotilla
        while alive(cli) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(cli)
        (race,) = SQLiteStore(tmp_path / "store.db").list_runs(kind="race")
        resumed = subprocess.run([*FLOTILLA, "resume", race["id"], "--json"], cwd=repo, capture_output=True,
                                 text=True, env=env, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["winner"] == "a1" and result["merged"]
    assert result["attempts"][0]["cost_usd"] > 0 and result["attempts"][0]["input_tokens"] > 0


def test_structured_cli_output_becomes_a_transcript() -> None:
    from flotilla.kernel._transcript import transcript

    gemini = "\n".join(json.dumps(e) for e in [
        {"type": "init"}, {"type": "message", "role": "user", "content": "- fix"},
        {"type": "tool_use", "tool_name": "run_shell_command", "tool_id": "t1", "parameters": {"command": "ls"}},
        {"type": "tool_result", "tool_id": "t1", "status": "success", "output": "calc.py"},
        {"type": "message", "role": "assistant", "content": "Fi", "delta": True},
        {"type": "message", "role": "assistant", "content": "xed.", "delta": True}, {"type": "result"}])
    said = transcript("gemini", "a warning line\n" + gemini)
    assert [m["role"] for m in said] == ["user", "assistant", "user", "assistant"]
    assert said[1]["content"][0]["name"] == "run_shell_command" and said[-1]["content"][0]["text"] == "Fixed."
    claude = json.dumps({"type": "user", "message": {"role": "user", "content": "x"}}) + "\n" + json.dumps(
        {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "y"}]}})
    assert [m["content"] for m in transcript("claude-code", claude)] == ["x", [{"type": "text", "text": "y"}]]
    codex = json.dumps({"type": "item.completed", "item": {"id": "i", "type": "command_execution", "command": "ls",
                                                           "aggregated_output": "calc.py", "exit_code": 0}})
    assert [m["role"] for m in transcript("codex", codex)] == ["assistant", "user"]
    assert transcript(None, claude) == []


def test_attempts_side_by_side_spend_one_race_budget_together(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "k")
    with FakeProvider({"gpt-test": {"text": "a + b"}}) as fp:
        repo = project(tmp_path, fp.url)
        one, store = race(repo, budget_usd=1.0)
        call = max(r["cost_usd"] / r["calls"] for r in store.usage([a.run_id for a in one.attempts]))
        sh(repo, "git", "reset", "-q", "--hard", "HEAD~1")  # the merged fix undone: the race again
        budget = 2.5 * call  # two and a half calls, for three attempts of two calls each
        outcome, store = race(repo, budget_usd=budget, n=3, parallel=3)
    rows = store.usage([a.run_id for a in outcome.attempts])
    spent, calls = sum(r["cost_usd"] for r in rows), sum(r["calls"] for r in rows)
    assert 1 <= calls <= 3 and spent <= budget + call, (calls, spent, budget)  # each key alone would allow 6
