"""``flotilla eval`` end to end on the shipped task set (examples/eval) with the seeded scripted solver, whose
outcomes are known (``solver.py --table steady 4``), and on a flotilla agent over the fake provider."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flotilla import Session
from flotilla.errors import UserError

FLOTILLA = str(Path(sys.executable).parent / "flotilla")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "eval"


def flotilla(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    return subprocess.run([FLOTILLA, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**base, "HOME": str(cwd), "COLUMNS": "200", **(env or {})})


def test_the_shipped_task_set_gives_the_numbers_worked_out_by_hand(tmp_path):
    # solver.py --table steady 4 (f = fix, w = weak: passes only the visible check, - = none):
    #   01 f f f f  02 - f w -  03 f f f f  04 f - - f  05 w - - f  06 f - - f
    #   07 f w w f  08 - - - f  09 - - - w  10 w f - -  11 f f w -  12 - - w w
    # x1: a1 solves 01 03 04 06 07 11 → 6. x4: some attempt solves all but 09 and 12 → 10.
    # checks picks the smaller diff: the weak fix wins 02 05 07 10 11 → 5 selected, loss 5.
    # vote: 11 has two real fixes against one weak one → 6 selected; ties (02 05 07 10) go to the
    # cluster with the best-ranked attempt, the weak one → loss 4.
    log = tmp_path / "seen.jsonl"
    done = flotilla(tmp_path, "eval", str(EXAMPLES / "tasks"), "--config", str(EXAMPLES / "one.toml"),
                    "--config", str(EXAMPLES / "checks4.toml"), "--config", str(EXAMPLES / "vote4.toml"),
                    "--json", "--csv", str(tmp_path / "summary.csv"), env={"FLOTILLA_EVAL_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    got = {r["config"]: (r["tasks"], r["pass@1"], r["any@N"], r["selected@N"], r["selector_loss"], r["attempts"])
           for r in report["summary"]}
    assert got == {"steady-x1": (12, 6, 6, 6, 0, 12), "steady-x4-checks": (12, 6, 10, 5, 5, 48),
                   "steady-x4-vote": (12, 6, 10, 6, 4, 48)}
    by = {(r["config"], r["task"]): r for r in report["results"]}
    assert by[("steady-x4-checks", "11-last")]["selection"]["strategy"] == "checks"
    assert by[("steady-x4-vote", "11-last")]["selected_solved"] and not by[("steady-x4-checks", "11-last")][
        "selected_solved"]
    with (tmp_path / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["config"], r["selected@N"], r["selector_loss"]) for r in rows] == [
        ("steady-x1", "6", "0"), ("steady-x4-checks", "5", "5"), ("steady-x4-vote", "6", "4")]
    # the hidden check never reached an attempt: not among the files it saw, not in its spec
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(seen) == 12 + 48 + 48
    hidden = {t.name: (t / "hidden" / "test_hidden.py").read_text() for t in (EXAMPLES / "tasks").iterdir()}
    for entry in seen:
        assert entry["files"] == ["lib.py", "test_visible.py"], entry
        assert "test_hidden" not in entry["spec"] and hidden[entry["task"]] not in entry["spec"]


def test_the_table_and_bad_input(tmp_path):
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text(json.dumps({"id": "t1", "repo": str(EXAMPLES / "tasks" / "03-is-even" / "repo"),
                                 "spec": "Task 03-is-even: fix lib.py", "check": "{python} -B test_visible.py",
                                 "hidden_check": "{python} -B test_hidden.py",
                                 "hidden_files": {"test_hidden.py": "from lib import is_even\nassert is_even(0)\n"}})
                     + "\n")
    shown = flotilla(tmp_path, "eval", str(jsonl), "--config", str(EXAMPLES / "one.toml"),
                     "--png", str(tmp_path / "chart.png"))
    assert shown.returncode == 0, shown.stderr
    assert "steady-x1" in shown.stdout and "1/1 (100%)" in shown.stdout and "pass@1" in shown.stdout
    chart = (tmp_path / "chart.png").read_bytes()  # a real PNG, drawn by matplotlib
    assert chart[:8] == b"\x89PNG\r\n\x1a\n" and len(chart) > 10_000 and "chart written" in shown.stderr
    one = ["--config", str(EXAMPLES / "one.toml")]
    for args, words in (([str(tmp_path / "nowhere"), *one], "no task set at"),
                        ([str(jsonl), "--config", str(tmp_path / "none.toml")], "no such file"),
                        ([str(jsonl)], "at least one race configuration")):
        bad = flotilla(tmp_path, "eval", *args)
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    (tmp_path / "bad.toml").write_text('modles = ["x"]\n')
    bad = flotilla(tmp_path, "eval", str(jsonl), "--config", str(tmp_path / "bad.toml"))
    assert bad.returncode == 2 and "modles" in bad.stderr and "the keys are" in bad.stderr


def test_a_flotilla_agent_over_the_fake_provider_never_sees_the_hidden_check(tmp_path, fake_provider):
    """Every attempt writes the weak fix: the visible check passes, the hidden one fails; what the model
    received holds neither the hidden test nor its file name; the cost is the fake provider's usage."""
    weak = (EXAMPLES / "answers" / "11-last" / "weak.py").read_text()

    def model(body: dict) -> dict:
        last = body["messages"][-1]["content"]
        if isinstance(last, list) and any(b.get("type") == "tool_result" for b in last):
            return {"text": "done", "input_tokens": 1000, "output_tokens": 10}
        return {"tool_use": {"name": "Write", "input": {"file_path": "lib.py", "content": weak}},
                "input_tokens": 1000, "output_tokens": 10}

    fp = fake_provider({"coder": model})
    (tmp_path / "flotilla.toml").write_text(f'[providers.fake]\nkind = "anthropic"\nbase_url = "{fp.url}"\n'
                                            '[models."fake:coder"]\ninput = 1.0\noutput = 100.0\n')
    (tmp_path / "two.toml").write_text('name = "coder-x2"\nmodels = ["fake:coder"]\nsamples = 2\n')
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "11-last").symlink_to(EXAMPLES / "tasks" / "11-last")
    report = Session(tmp_path, durable=False).eval_sync(tasks, [tmp_path / "two.toml"])
    (row,) = report.summary
    assert (row["pass@1"], row["any@N"], row["selected@N"]) == (0, 0, 0)
    (result,) = report.results
    assert [(a["visible"], a["hidden"]) for a in result["attempts"]] == [(True, False), (True, False)]
    assert fp.count("coder") == 4
    assert row["cost_usd"] == pytest.approx(4 * (1000 * 1 + 10 * 100) / 1e6)
    hidden = (EXAMPLES / "tasks" / "11-last" / "hidden" / "test_hidden.py").read_text()
    for received in fp.received:
        text = json.dumps(received.body)
        assert "test_hidden" not in text and "assert last([]) is None" not in text
    assert hidden.count("assert last([]) is None") == 1


def test_a_bad_task_names_its_file(tmp_path):
    folder = tmp_path / "tasks" / "t1"
    folder.mkdir(parents=True)
    (folder / "task.toml").write_text('spec = "x"\ncheck = "true"\n')
    with pytest.raises(UserError, match=r"task.toml.*hidden_check"):
        Session(tmp_path, durable=False).eval_sync(tmp_path / "tasks", [EXAMPLES / "one.toml"])


def test_kill_9_mid_eval_then_resume_runs_only_what_was_left(tmp_path):
    import signal
    import time

    from flotilla.store import SQLiteStore

    log, db = tmp_path / "seen.jsonl", tmp_path / "store.db"
    args = ["eval", str(EXAMPLES / "tasks"), "--config", str(EXAMPLES / "one.toml"), "--store", str(db), "--json"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}, "HOME": str(tmp_path),
           "FLOTILLA_EVAL_LOG": str(log), "FLOTILLA_EVAL_DELAY": "0.3"}
    proc = subprocess.Popen([FLOTILLA, *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if db.exists() and len(SQLiteStore(db).list_runs(kind="eval-task")) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    store = SQLiteStore(db)
    (record,) = store.list_runs(kind="eval")
    finished = {r["title"].split("/", 1)[1] for r in store.list_runs(kind="eval-task")}
    assert 3 <= len(finished) < 12 and record["status"] == "running"
    resumed = subprocess.run([FLOTILLA, *args, "--resume", record["id"]], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["eval_id"] == record["id"] and len(report["results"]) == 12
    assert [(r["pass@1"], r["any@N"], r["selected@N"]) for r in report["summary"]] == [(6, 6, 6)]
    runs = [json.loads(line)["task"] for line in log.read_text().splitlines()]
    assert all(runs.count(task) == 1 for task in finished)  # finished before the kill: not run again
    assert set(runs) == {t.name for t in (EXAMPLES / "tasks").iterdir()}
