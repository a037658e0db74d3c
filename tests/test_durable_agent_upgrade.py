"""kill -9 of `flotilla run` mid-run, then a process running *changed* code (one more workflow registered:
under DBOS's default, a hash of the workflow code, that is another application version) continues it,
because flotilla sets the application version itself. No finished model call is sent again.
Another command never picks a crashed run up behind the user's back: it stays listed as crashed
(resumable) until `flotilla resume` finishes it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from test_durable_race_crash import FIXED, WRITE, counts, free_port, wait_for

FLOTILLA = str(Path(sys.executable).parent / "flotilla")
SCRIPT = {"m1": [WRITE, {"delay": 60, "text": "never sent"}, {"text": "fixed after the upgrade"}]}

UPGRADED = '''
import asyncio, json, sys
from flotilla import Session, durable


@durable.workflow("test.added_by_the_upgrade")
async def added_by_the_upgrade(x: int) -> int:
    return x


async def main() -> None:
    async with Session(project=".") as session:  # the public API, as a script would resume a run
        print(json.dumps(await session.resume(sys.argv[1])))

asyncio.run(main())
'''


@contextmanager
def fake_project(tmp_path: Path, script: dict) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A `flotilla fake-provider` process answering ``script``, and a workspace configured to use it:
    yields the provider's URL, the workspace and the environment for flotilla commands."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "script.json").write_text(json.dumps(script))
    fake = subprocess.Popen([FLOTILLA, "fake-provider", "--script", str(tmp_path / "script.json"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        work = tmp_path / "w"
        work.mkdir()
        (work / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        (work / "flotilla.toml").write_text(f'[providers.fake]\nkind = "anthropic"\nbase_url = "{url}"\n'
                                            'api_key_env = "FAKE_PROVIDER_KEY"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
        env["FAKE_PROVIDER_KEY"] = "test-key"
        wait_for(lambda: counts(url) == {})
        yield url, work, env
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_a_killed_agent_run_resumes_under_upgraded_code(tmp_path):
    with fake_project(tmp_path, SCRIPT) as (url, work, env):
        run = subprocess.Popen([FLOTILLA, "run", "implementer", "Fix add in calc.py", "-m", "fake:m1", "--json"],
                               cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: counts(url).get("m1") == 2 or run.poll() is not None)
        assert run.poll() is None, run.communicate()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        db = work / ".flotilla" / "flotilla.db"
        with sqlite3.connect(db) as c:
            (run_id,) = c.execute("SELECT id FROM runs WHERE kind = 'agent'").fetchone()
        assert (work / "calc.py").read_text() == FIXED  # the Write call had finished before the kill

        (tmp_path / "upgraded.py").write_text(UPGRADED)
        done = subprocess.run([sys.executable, str(tmp_path / "upgraded.py"), run_id], cwd=work, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert (result["stop_reason"], result["text"], result["turns"]) == ("end_turn", "fixed after the upgrade", 2)
        assert counts(url) == {"m1": 3}  # the first call was not sent again; the one in flight was
        with sqlite3.connect(db) as c:
            (status,) = c.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            roles = [json.loads(r[0])["message"]["role"] for r in c.execute(
                "SELECT data FROM events WHERE run_id = ? AND kind = 'MessageAdded' ORDER BY id", (run_id,))]
            tools = c.execute("SELECT COUNT(*) FROM events WHERE run_id = ? AND kind = 'ToolCalled'",
                              (run_id,)).fetchone()[0]
        assert status == "done"
        assert roles == ["user", "assistant", "user", "assistant"]  # the replay did not double the transcript
        assert tools == 1  # the finished Write was replayed from its record, not run again


def test_a_crashed_run_waits_for_resume_and_no_other_command_picks_it_up(tmp_path):
    script = {**SCRIPT, "m2": [{"text": "the new run's answer"}]}
    with fake_project(tmp_path, script) as (url, work, env):
        crashed = subprocess.Popen([FLOTILLA, "run", "implementer", "Fix add", "-m", "fake:m1", "--json"], cwd=work,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: counts(url).get("m1") == 2 or crashed.poll() is not None)
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(timeout=10)

        other = subprocess.run([FLOTILLA, "run", "implementer", "Say hi", "-m", "fake:m2", "--json"], cwd=work,
                               env=env, capture_output=True, text=True, timeout=120)
        assert other.returncode == 0, other.stderr
        assert json.loads(other.stdout)["text"] == "the new run's answer"
        assert "picked up" not in other.stderr and counts(url) == {"m1": 2, "m2": 1}
        listed = subprocess.run([FLOTILLA, "runs"], cwd=work, env={**env, "COLUMNS": "200"}, capture_output=True,
                                text=True, timeout=60)
        assert "crashed (resumable)" in listed.stdout, listed.stdout
        with sqlite3.connect(work / ".flotilla" / "flotilla.db") as c:
            (run_id,) = c.execute("SELECT id FROM runs WHERE title LIKE '%Fix add%'").fetchone()
        resumed = subprocess.run([FLOTILLA, "resume", run_id], cwd=work, env=env, capture_output=True, text=True,
                                 timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        with sqlite3.connect(work / ".flotilla" / "flotilla.db") as c:
            statuses = dict(c.execute("SELECT title, status FROM runs").fetchall())
        assert sorted(statuses.values()) == ["done", "done"]
        assert counts(url) == {"m1": 3, "m2": 1}
        again = subprocess.run([FLOTILLA, "resume", run_id], cwd=work, env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 1 and "there is nothing to resume" in again.stderr
