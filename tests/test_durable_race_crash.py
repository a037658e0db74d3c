"""kill -9 of `flotilla race` mid-race, then `flotilla resume`: the race completes, and no model call that
had finished is sent again (the fake provider, in its own process, counts every request)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from test_race_support import CHECK, make_repo, sh

FLOTILLA = str(Path(sys.executable).parent / "flotilla")
FIXED = "def add(a, b):\n    return a + b\n"
WRITE = {"tool_uses": [{"name": "Write", "input": {"file_path": "calc.py", "content": FIXED}}]}
SCRIPT = {
    "m1": [WRITE, {"text": "fixed"}],  # a1: finishes before the kill
    "m2": [WRITE, {"delay": 60, "text": "never sent"}, {"text": "fixed after resume"}],  # a2: in flight at the kill
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counts(url: str) -> dict[str, int]:
    try:
        return httpx.get(f"{url}/_flotilla/counts", timeout=5).json()
    except httpx.TransportError:
        return {}


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def events(db: Path, kind: str) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as c:
        try:
            rows = c.execute("SELECT data FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        except sqlite3.OperationalError:  # the file exists, the store has not made its tables yet
            return []
    return [json.loads(r[0]) for r in rows]


def with_fake_provider(tmp_path: Path, script: dict, repo: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """Starts the fake provider (its own process) playing ``script``, and points ``repo`` at it (committed);
    returns the process, its URL and the environment to run flotilla in."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "script.json").write_text(json.dumps(script))
    fake = subprocess.Popen([FLOTILLA, "fake-provider", "--script", str(tmp_path / "script.json"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (repo / "flotilla.toml").write_text(f'[providers.fake]\nkind = "anthropic"\nbase_url = "{url}"\n'
                                        'api_key_env = "FAKE_PROVIDER_KEY"\n')
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "configure the fake provider")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    env["FAKE_PROVIDER_KEY"] = "test-key"
    wait_for(lambda: counts(url) == {})  # the fake is up (an empty dict, not a refused connection)
    return fake, url, env


def test_kill_9_mid_race_then_resume_completes_without_resending_finished_calls(tmp_path):
    repo = make_repo(tmp_path / "r")
    fake, url, env = with_fake_provider(tmp_path, SCRIPT, repo)
    try:
        db = repo / ".flotilla" / "flotilla.db"

        race = subprocess.Popen([FLOTILLA, "race", "Fix add", "-m", "fake:m1", "-m", "fake:m2", "--check", CHECK,
                                 "--json"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        # a1 finished (its check ran) while a2's second model call is held by the fake
        wait_for(lambda: [e["attempt"] for e in events(db, "AttemptFinished")] == ["a1"]
                 and counts(url).get("m2") == 2 or race.poll() is not None)
        assert race.poll() is None, race.communicate()
        race.send_signal(signal.SIGKILL)
        race.wait(timeout=10)
        (started,) = events(db, "RunStarted")[:1]
        race_id = started["run_id"]

        listed = subprocess.run([FLOTILLA, "runs"], cwd=repo, env={**env, "COLUMNS": "250"}, capture_output=True,
                                text=True, timeout=60)
        assert "crashed (resumable)" in next(line for line in listed.stdout.splitlines() if race_id in line)

        done = subprocess.run([FLOTILLA, "resume", race_id, "--json"], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout)
        assert outcome["status"] == "done" and outcome["winner"] in ("a1", "a2")
        assert {a["name"]: a["passed"] for a in outcome["attempts"]} == {"a1": True, "a2": True}
        # a1's two calls and a2's first were not sent again; a2's call in flight was (at least once)
        assert counts(url) == {"m1": 2, "m2": 3}
        assert (repo / "calc.py").read_text() == FIXED  # the winner is merged into main
        assert sh(repo, "git", "branch", "--list", f"flotilla/{race_id}/*") == ""  # and the branches cleaned up
        # the resumed attempt's transcript is not doubled by the replay
        a2 = next(a for a in outcome["attempts"] if a["name"] == "a2")
        with sqlite3.connect(db) as c:
            roles = [json.loads(r[0])["message"]["role"] for r in c.execute(
                "SELECT data FROM events WHERE run_id = ? AND kind = 'MessageAdded' ORDER BY id", (a2["run_id"],))]
        assert roles == ["user", "assistant", "user", "assistant"]
        assert len([e for e in events(db, "AttemptFinished")]) == 2
    finally:
        fake.terminate()
        fake.wait(timeout=10)
