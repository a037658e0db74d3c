"""The race commands as a user runs them: real subprocesses, real git, a real store file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flotilla.store import SQLiteStore
from test_race_support import CHECK, alive, branches, make_repo, sh, worktrees

FLOTILLA = [str(Path(sys.executable).parent / "flotilla")]

FAKE = """import os, pathlib, sys, time
pids = pathlib.Path(sys.argv[1])
pids.joinpath(f"{os.getpid()}.pid").write_text(str(os.getpid()))
p = pathlib.Path("calc.py"); p.write_text(p.read_text().replace("a - b", sys.argv[2]))
ran = pids / ("ran-" + os.getcwd().replace(os.sep, "_"))  # a resumed attempt runs it again, in the same worktree
if not ran.exists():
    ran.touch()
    time.sleep(float(sys.argv[3]))
"""


def flotilla(repo: Path, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*FLOTILLA, *args], cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FLOTILLA_STORE": str(repo.parent / "store.db"), **(env or {})}, **kw)


def fake_agent(tmp_path: Path, change: str, sleep: float) -> str:
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    (tmp_path / "pids").mkdir(exist_ok=True)
    return f"cmd:{sys.executable} {script} {tmp_path / 'pids'} '{change}' {sleep} {{model}}"


def test_race_json_then_diff_and_merge_by_hand(tmp_path):
    repo = make_repo(tmp_path / "r")
    agent = fake_agent(tmp_path, "a + b", 0)
    done = flotilla(repo, "race", "Fix add", "--agent", agent, "--check", CHECK, "--pick", "manual", "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["winner"] == "a1" and outcome["merged"] is None and "estimate: 1 attempt, cost unknown" in done.stderr
    race_id = outcome["race_id"]
    shown = flotilla(repo, "diff", race_id[:6])
    assert "+    return a + b" in shown.stdout
    merged = flotilla(repo, "merge", race_id)
    assert merged.returncode == 0, merged.stderr
    assert "return a + b" in (repo / "calc.py").read_text() and f"flotilla/{race_id}/a1" not in branches(repo)
    again = flotilla(repo, "merge", race_id)
    assert again.returncode == 2 and "already merged" in again.stderr


def test_no_attempt_passed_exits_1_and_merge_refuses(tmp_path):
    repo = make_repo(tmp_path / "r")
    head = sh(repo, "git", "rev-parse", "HEAD")
    agent = fake_agent(tmp_path, "a * b", 0)
    failed = flotilla(repo, "race", "Fix add", "--agent", agent, "--check", CHECK, "--json")
    assert failed.returncode == 1
    race_id = json.loads(failed.stdout)["race_id"]
    refused = flotilla(repo, "merge", race_id, "a1")
    assert refused.returncode == 2 and "did not pass its check" in refused.stderr
    assert sh(repo, "git", "rev-parse", "HEAD") == head


def test_dirty_and_not_a_repo_refusals_from_the_command(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / "calc.py").write_text("x\n")
    dirty = flotilla(repo, "race", "Fix add", "--agent", "cmd:true", "--check", "true")
    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stderr and "--allow-dirty" in dirty.stderr
    (tmp_path / "plain").mkdir()
    plain = flotilla(tmp_path / "plain", "race", "x", "--agent", "cmd:true", "--check", "true")
    assert plain.returncode == 2 and "not a git repository" in plain.stderr


def test_ctrl_c_cancels_every_attempt_keeps_branches_and_leaves_no_processes(tmp_path):
    repo = make_repo(tmp_path / "r")
    agent = fake_agent(tmp_path, "a + b", 60)
    proc = subprocess.Popen([*FLOTILLA, "race", "Fix add", "--agent", agent, "-m", "x", "-m", "y", "--check", CHECK],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db")})
    pids_dir = tmp_path / "pids"
    deadline = time.monotonic() + 30
    while len(list(pids_dir.glob("*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in pids_dir.glob("*.pid")]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not any(alive(p) for p in pids)
    store = SQLiteStore(tmp_path / "store.db")
    (race,) = store.list_runs(kind="race")
    assert race["status"] == "cancelled"
    assert all(c["status"] == "cancelled" for c in store.list_runs(parent_id=race["id"]))
    kept = [b for b in branches(repo) if b.startswith("flotilla/")]
    assert kept == [f"flotilla/{race['id']}/a1", f"flotilla/{race['id']}/a2"]
    # the work done before Ctrl-C is on the branches; no worktree is left behind
    assert "a + b" in sh(repo, "git", "show", f"{kept[0]}:calc.py")
    assert worktrees(repo) == [str(repo)]
    # one line says which race stopped, its state, and how to look at or remove what it kept
    (said,) = [line for line in err.splitlines() if "interrupted" in line]
    assert f"race {race['id']} (cancelled)" in said and f"flotilla diff {race['id']}" in said
    assert "git branch -D" in said
    shown = flotilla(repo, "show", race["id"])
    assert shown.returncode == 0, shown.stderr
    assert "a1: stopped before it finished" in shown.stdout and " 0. " not in shown.stdout
    assert not [line for line in shown.stdout.splitlines() if line.startswith("0 ")]  # no place 0 rows
    assert "nothing to collect" in flotilla(repo, "gc").stdout


def test_gc_from_the_command_cleans_a_crashed_race(tmp_path):
    repo = make_repo(tmp_path / "r")
    agent = fake_agent(tmp_path, "a + b", 60)
    proc = subprocess.Popen([*FLOTILLA, "race", "Fix add", "--agent", agent, "--check", CHECK], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db")})
    deadline = time.monotonic() + 30
    while not list((tmp_path / "pids").glob("*.pid")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # a crash: no clean-up runs
    proc.wait()
    for pid_file in (tmp_path / "pids").glob("*.pid"):  # the fake agent dies with flotilla, not orphaned
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 15
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    assert len(worktrees(repo)) == 2
    collected = flotilla(repo, "gc")
    assert collected.returncode == 0 and "removed worktree" in collected.stdout and "removed branch" in collected.stdout
    assert worktrees(repo) == [str(repo)] and [b for b in branches(repo) if b.startswith("flotilla/")] == []
    (race,) = SQLiteStore(tmp_path / "store.db").list_runs(kind="race")
    assert race["status"] == "failed" and "crashed" in race["reason"]


def test_demo_end_to_end(tmp_path):
    started = time.monotonic()
    # os.environ given explicitly: pytest imports readline, which exports COLUMNS=80 to any child that
    # inherits the process environment, and piped output honours COLUMNS
    done = subprocess.run([*FLOTILLA, "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    assert "winning diff: a1" in text and "merged a1 into main" in text
    assert "scripted:overloaded → scripted:backup" in text and "✗ 2 failed" in text
    assert "4 passed" in text and "the library's tests pass" in text
    assert list(tmp_path.iterdir()) == []  # nothing left in the user's folder
    assert time.monotonic() - started < 60


DRIVER = """import sys
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.testing.registry import register_scripted
from flotilla.cli.main import main
pid_file = sys.argv.pop(1)
register_scripted("sleepy", lambda: ScriptedModel([
    tool_call("Edit", {"file_path": "calc.py", "old_string": "a - b", "new_string": "a + b"}),
    tool_call("Bash", {"command": f"echo $$ >> {pid_file}; sleep 60"}), reply("done")]))
main()
"""


def test_ctrl_c_stops_flotilla_agents_and_their_bash_commands(tmp_path):
    repo = make_repo(tmp_path / "r")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    pid_file = tmp_path / "bash.pids"
    proc = subprocess.Popen([sys.executable, str(driver), str(pid_file), "race", "Fix add", "-m", "scripted:sleepy",
                             "-n", "2", "--check", CHECK], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # unconfined: the commands write their pids outside their worktrees
                            env={**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db"),
                                 "FLOTILLA_SANDBOX__MODE": "off"})
    deadline = time.monotonic() + 30
    while (not pid_file.exists() or len(pid_file.read_text().split()) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)
    store = SQLiteStore(tmp_path / "store.db")
    (race,) = store.list_runs(kind="race")
    attempts = store.list_runs(parent_id=race["id"])
    assert race["status"] == "cancelled" and [a["status"] for a in attempts] == ["cancelled", "cancelled"]
    kept = sorted(b for b in branches(repo) if b.startswith("flotilla/"))
    assert len(kept) == 2 and all("a + b" in sh(repo, "git", "show", f"{b}:calc.py") for b in kept)
    assert worktrees(repo) == [str(repo)]
