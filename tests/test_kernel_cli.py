"""The rebuilt race's lifecycle through the real CLI: SIGTERM is a stop (never resumed, never merged),
`--pick manual` keeps every passing branch, a push that fails fails the race, an external attempt
killed with SIGKILL resumes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from flotilla.store import SQLiteStore
from test_race_cli import FLOTILLA, fake_agent, flotilla
from test_race_support import CHECK, alive, branches, make_repo, sh, worktrees


def wait_for_pids(tmp_path: Path, n: int) -> list[int]:
    pids_dir = tmp_path / "pids"
    deadline = time.monotonic() + 30
    def written() -> list[str]:  # a pid file is created a moment before its pid is in it
        return [t for t in (p.read_text() for p in pids_dir.glob("*.pid")) if t.strip()]

    while len(written()) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return [int(t) for t in written()]


def test_sigterm_stops_a_race_for_good_and_nothing_resumes_or_merges_it(tmp_path):
    repo = make_repo(tmp_path / "r")
    head = sh(repo, "git", "rev-parse", "HEAD")
    agent = fake_agent(tmp_path, "a + b", 60)
    env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db")}
    proc = subprocess.Popen([*FLOTILLA, "race", "Fix add", "--agent", agent, "-m", "x", "-m", "y", "--check", CHECK],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    pids = wait_for_pids(tmp_path, 2)
    assert len(pids) == 2
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "stopped by SIGTERM" in err, err
    assert not any(alive(p) for p in pids)
    store = SQLiteStore(tmp_path / "store.db")
    (race,) = store.list_runs(kind="race")
    assert race["status"] == "cancelled"
    assert all(c["status"] == "cancelled" for c in store.list_runs(parent_id=race["id"]))
    assert [b for b in branches(repo) if b.startswith("flotilla/")] == [
        f"flotilla/{race['id']}/a1", f"flotilla/{race['id']}/a2"]
    assert worktrees(repo) == [str(repo)]
    # another command does not adopt it, and resume refuses with the reason
    flotilla(repo, "runs")
    resumed = flotilla(repo, "resume", race["id"])
    assert resumed.returncode == 1 and "was stopped" in resumed.stderr and "resuming" not in resumed.stderr
    assert sh(repo, "git", "rev-parse", "HEAD") == head  # never merged


def test_pick_manual_keeps_every_passing_attempts_branch_for_merge(tmp_path):
    repo = make_repo(tmp_path / "r")
    agent = fake_agent(tmp_path, "a + b", 0)
    done = flotilla(repo, "race", "Fix add", "--agent", agent, "-m", "x", "-m", "y", "--check", CHECK,
                    "--pick", "manual", "--json", "--no-durable")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    race_id = outcome["race_id"]
    assert {f"flotilla/{race_id}/a1", f"flotilla/{race_id}/a2"} <= set(branches(repo))
    other = next(a["name"] for a in outcome["attempts"] if a["name"] != outcome["winner"])
    merged = flotilla(repo, "merge", race_id, other)
    assert merged.returncode == 0, merged.stderr
    assert "return a + b" in (repo / "calc.py").read_text()


def test_a_queued_race_whose_push_fails_fails_with_gits_reason(tmp_path):
    repo = make_repo(tmp_path / "r")
    agent = fake_agent(tmp_path, "a + b", 0)
    missing = tmp_path / "no-such-remote.git"
    done = flotilla(repo, "race", "Fix add", "--agent", agent, "-m", "x", "--check", CHECK, "--queue",
                    "--remote", f"file://{missing}", "--json")
    assert done.returncode == 1, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "failed" and "could not push" in outcome["notes"][0]
    store = SQLiteStore(tmp_path / "store.db")
    assert store.get_run(outcome["race_id"])["status"] == "failed"


def test_an_external_attempt_killed_with_sigkill_resumes(tmp_path):
    repo = make_repo(tmp_path / "r")
    slow = fake_agent(tmp_path, "a + b", 60)
    env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db")}
    proc = subprocess.Popen([*FLOTILLA, "race", "Fix add", "--agent", slow, "-m", "x", "--check", CHECK, "--json"],
                            cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env)
    (pid,) = wait_for_pids(tmp_path, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10  # the external CLI dies with flotilla (no second copy on resume)
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    store = SQLiteStore(tmp_path / "store.db")
    (race,) = store.list_runs(kind="race")
    resumed = flotilla(repo, "resume", race["id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["winner"] == "a1"
    assert "return a + b" in (repo / "calc.py").read_text()


def test_a_crash_does_not_reset_the_budget(tmp_path):
    """A run capped at $0.16 whose calls cost $0.05 each spends the same, killed mid-call and resumed,
    as it does uninterrupted: the meter starts from what the store recorded, not from zero."""
    from test_durable_agent_upgrade import fake_project
    from test_durable_race_crash import counts, wait_for

    call = {"tool_uses": [{"name": "Bash", "input": {"command": "echo step"}}], "input_tokens": 10_000,
            "output_tokens": 0}
    script = {"m1": [call, call, {**call, "delay": 60}] + [call] * 10, "m2": [call] * 13}
    with fake_project(tmp_path, script) as (url, work, env):
        toml = work / "flotilla.toml"
        toml.write_text(toml.read_text() + '\n[models."fake:m1"]\ninput = 5.0\noutput = 5.0\n'
                                           '\n[models."fake:m2"]\ninput = 5.0\noutput = 5.0\n')
        whole = subprocess.run([*FLOTILLA, "run", "implementer", "Loop", "-m", "fake:m2", "--budget-usd", "0.16",
                                "--json"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert json.loads(whole.stdout)["stop_reason"] == "budget", whole.stderr
        crashed = subprocess.Popen([*FLOTILLA, "run", "implementer", "Loop", "-m", "fake:m1", "--budget-usd", "0.16",
                                    "--json"], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: counts(url).get("m1") == 3 or crashed.poll() is not None)
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(timeout=10)
        store = SQLiteStore(work / ".flotilla" / "flotilla.db")
        run_id = next(r["id"] for r in store.list_runs(kind="agent") if r["meta"]["model"] == "fake:m1")
        resumed = subprocess.run([*FLOTILLA, "resume", run_id, "--json"], cwd=work, env=env, capture_output=True,
                                 text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        spent = {r["meta"]["model"]: store.cost([r["id"]]) for r in store.list_runs(kind="agent")}
        calls = {r["meta"]["model"]: sum(u["calls"] for u in store.usage([r["id"]])) for r in store.list_runs(kind="agent")}
        assert spent["fake:m1"] == spent["fake:m2"] and calls["fake:m1"] == calls["fake:m2"], (spent, calls)
        assert spent["fake:m1"] <= 0.16 + 0.05 + 1e-9
