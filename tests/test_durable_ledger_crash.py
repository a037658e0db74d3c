"""kill -9 of `flotilla ledger work` mid-session, then `flotilla resume`: the session goes on where it
stopped, no finished model call is sent again (the fake provider, in its own process, counts every
request), and no session is started or counted twice."""

from __future__ import annotations

import json
import signal
import subprocess

from flotilla import Session
from flotilla.config import load_settings
from flotilla.demo_ledger import FEATURES, GOAL, calc_with, initializer_steps, make_repo
from flotilla.testing import ScriptedModel
from flotilla.store import SQLiteStore
from test_durable_race_crash import FLOTILLA, counts, events, wait_for, with_fake_provider
from test_race_support import sh


def write(path: str, content: str) -> dict:
    return {"name": "Write", "input": {"file_path": path, "content": content}}


SCRIPT = {
    "w": [{"tool_uses": [write("calc.py", calc_with("add"))]}, {"text": "add done"},  # session 1
          {"tool_uses": [write("calc.py", calc_with("add", "sub"))]},  # session 2: this call finishes,
          {"delay": 60, "text": "never sent"}, {"text": "sub done after the resume"}],  # this one is in flight
}


def initialized(tmp_path, script):
    """The repository pointed at the fake provider, its ledger planned in this process (a scripted
    initializer; `flotilla ledger init` is the same Session call), into the store the CLI reads."""
    repo = make_repo(tmp_path / "calc")
    fake, url, env = with_fake_provider(tmp_path, script, repo)
    settings = load_settings(cwd=repo, environ={}, user_file=repo / "no-user-config.toml")
    init = ScriptedModel(initializer_steps(FEATURES[:2]), name="scripted:init")
    session = Session(project=repo, durable=False, settings=settings, models={"scripted:init": init},
                      home=repo / "no-home")
    assert session.ledger_sync("init", GOAL, model="scripted:init")["status"] == "done"
    session.store.close()
    return repo, fake, url, env


def test_kill_9_mid_session_then_resume_counts_every_session_once(tmp_path):
    repo, fake, url, env = initialized(tmp_path, SCRIPT)
    try:
        db = repo / ".flotilla" / "flotilla.db"
        run = subprocess.Popen([FLOTILLA, "ledger", "work", "--sessions", "2", "-m", "fake:w", "--json"], cwd=repo,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: counts(url).get("w") == 4 or run.poll() is not None, timeout=60)
        assert run.poll() is None, run.communicate()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        work_id = next(e["run_id"] for e in events(db, "RunStarted") if e["kind"] == "ledger-work")

        done = subprocess.run([FLOTILLA, "resume", work_id, "--json"], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert [(r["number"], r["feature"], r["passed"]) for r in result["sessions"]] == [(1, "add", True),
                                                                                         (2, "sub", True)]
        assert result["all_pass"] and result["stop"] == "every feature passes"
        assert counts(url) == {"w": 5}  # only the call in flight at the kill was sent again
        assert sorted(e["attempt"] for e in events(db, "AttemptStarted")) == ["s1", "s2"]  # one worker each, ever
        assert [e["session"] for e in events(db, "LedgerSessionEnded")] == [1, 2]
        ledger = SQLiteStore(db).get_run(result["ledger_id"])["meta"]
        assert ledger["sessions"] == 2 and sorted(ledger["history"]) == ["1", "2"]
        assert [f["passes"] for f in json.loads(sh(repo, "git", "show", "main:features.json"))] == [True, True]
        assert sh(repo, "git", "branch", "--list", "flotilla/*") == ""
        assert sh(repo, "git", "worktree", "list").count("\n") == 0
        shown = subprocess.run([FLOTILLA, "ledger", "status"], cwd=repo, env={**env, "COLUMNS": "200"},
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and "2 of 2 pass; 2 session(s)" in shown.stdout, shown.stderr
        assert [line.split()[:3] for line in shown.stdout.splitlines() if line.startswith(("add ", "sub "))] == [
            ["add", "yes", "1"], ["sub", "yes", "1"]]
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_sigterm_stops_the_work_for_good_and_leaves_no_worktree(tmp_path):
    script = {"w": [{"tool_uses": [write("calc.py", calc_with("add"))]}, {"delay": 60, "text": "never sent"}]}
    repo, fake, url, env = initialized(tmp_path, script)
    try:
        run = subprocess.Popen([FLOTILLA, "ledger", "work", "-m", "fake:w"], cwd=repo, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: counts(url).get("w") == 2 or run.poll() is not None, timeout=60)
        run.send_signal(signal.SIGTERM)
        said, err = run.communicate(timeout=30)
        assert run.returncode != 0 and "stopped by SIGTERM" in err
        assert "session 1 started (implementer, fake:w)" in said  # said live, as it happened
        db = repo / ".flotilla" / "flotilla.db"
        work_id = next(e["run_id"] for e in events(db, "RunStarted") if e["kind"] == "ledger-work")
        store = SQLiteStore(db)
        assert store.get_run(work_id)["status"] == "cancelled"
        ledger = store.get_run(store.get_run(work_id)["parent_id"])["meta"]
        assert ledger["sessions"] == 0 and not any(f["passes"] for f in ledger["features"])
        assert sh(repo, "git", "worktree", "list").count("\n") == 0  # the session's work is kept on its branch
        assert "def add" in sh(repo, "git", "show", f"flotilla/{work_id}/s1:calc.py")
    finally:
        fake.terminate()
        fake.wait(timeout=10)
