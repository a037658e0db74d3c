"""Several machines: `flotilla race --queue` enqueues the attempts on a shared Postgres (or one SQLite
file); two `flotilla worker` processes (each with its own clone of a shared git remote, as on two
machines) run them; the worker holding the slow attempt is killed with SIGKILL; the other adopts it
and the race merges the winner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from test_durable_race_crash import FIXED, WRITE, counts, free_port, wait_for
from test_race_support import CHECK, make_repo, sh

FLOTILLA = str(Path(sys.executable).parent / "flotilla")
SCRIPT = {"m1": [WRITE, {"text": "fixed"}],
          "m2": [WRITE, {"delay": 60, "text": "never sent"}, {"text": "fixed by the adopting worker"}]}


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request, tmp_path: Path) -> str:
    """Postgres (several machines), or one SQLite file that workers on one machine share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    base = os.environ.get("FLOTILLA_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs FLOTILLA_TEST_POSTGRES_URL (a Postgres server; .ci/run starts one on loopback)")
    return f"{base.rpartition('/')[0]}/flotilla_{uuid.uuid4().hex[:8]}"  # DBOS creates it on first launch


def executors(url: str) -> dict[str, str]:
    """Workflow id -> executor id, read straight from DBOS's table."""
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):], timeout=30) as c:
            return dict(c.execute("SELECT workflow_uuid, executor_id FROM workflow_status").fetchall())
    import psycopg

    with psycopg.connect(url) as c:
        return dict(c.execute("SELECT workflow_uuid, executor_id FROM dbos.workflow_status").fetchall())


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to every process still running, then a kill for any that does not end in 15 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def project_with_remote(tmp_path: Path, url: str) -> tuple[Path, Path]:
    """A repository configured for the fake provider at ``url`` and a bare remote for the workers."""
    remote = tmp_path / "remote.git"
    sh(tmp_path, "git", "init", "-q", "--bare", str(remote))
    repo = make_repo(tmp_path / "r")
    (repo / "flotilla.toml").write_text(f'[providers.fake]\nkind = "anthropic"\nbase_url = "{url}"\n'
                                        f'api_key_env = "FAKE_PROVIDER_KEY"\n\n'
                                        f'[worker]\nremote = "file://{remote}"\n')
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "configure the fake provider and the remote")
    return repo, remote


def test_two_workers_run_queued_attempts_and_a_killed_workers_attempt_is_adopted(tmp_path, database_url):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "script.json").write_text(json.dumps(SCRIPT))
    procs: list[subprocess.Popen] = []
    procs.append(subprocess.Popen([FLOTILLA, "fake-provider", "--script", str(tmp_path / "script.json"),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        repo, remote = project_with_remote(tmp_path, url)
        sh(repo, "git", "push", "-q", f"file://{remote}", "main")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
        env.update(FAKE_PROVIDER_KEY="test-key", FLOTILLA_DATABASE_URL=database_url)
        wait_for(lambda: counts(url) == {})
        # the orchestrator first: it creates the database before the workers race to
        race = subprocess.Popen([FLOTILLA, "race", "Fix add", "-m", "fake:m1", "-m", "fake:m2", "--check", CHECK,
                                 "--queue", "--json"], cwd=repo, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        workers = []
        for name in ("w1", "w2"):  # two "machines": their own folders and clones
            home = tmp_path / name
            home.mkdir()
            workers.append(subprocess.Popen(
                [FLOTILLA, "worker", "--concurrency", "1", "--dead-after", "3"], cwd=home,
                env={**env, "FLOTILLA_CACHE_DIR": str(home / "cache")}, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True))
        procs += [race, *workers]
        # a2's second model call is held by the fake: kill the worker that runs it
        wait_for(lambda: counts(url).get("m2") == 2 or race.poll() is not None, timeout=60)
        assert race.poll() is None, race.communicate()
        store = repo / ".flotilla" / "flotilla.db"
        import sqlite3

        with sqlite3.connect(store) as c:
            (meta,) = c.execute("SELECT meta FROM runs WHERE kind = 'race'").fetchone()
        a2 = next(a for a in json.loads(meta)["attempts"] if a["name"] == "a2")
        holder = executors(database_url)[a2["run_id"]]
        victim = next(w for w in workers if f"-{w.pid}-" in holder)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

        out, err = race.communicate(timeout=90)
        assert race.returncode == 0, err
        outcome = json.loads(out)
        assert {a["name"]: a["passed"] for a in outcome["attempts"]} == {"a1": True, "a2": True}
        assert executors(database_url)[a2["run_id"]] != holder  # adopted by the live worker
        assert counts(url) == {"m1": 2, "m2": 3}  # only the call in flight at the kill was sent again
        assert outcome["merged"] and (repo / "calc.py").read_text() == FIXED
        # the attempts' branches came back through the remote
        pushed = sh(remote, "git", "branch", "--list", f"flotilla/{outcome['race_id']}/*")
        assert "a1" in pushed and "a2" in pushed
    finally:
        stop_all(procs)


def test_a_killed_orchestrator_is_never_adopted_by_a_worker_and_resumes_where_its_repository_is(tmp_path):
    """kill -9 of `race --queue` while a worker runs an attempt: the worker finishes the attempt but never
    takes the race (nor merges into the project); `flotilla resume RACE` in the project concludes it."""
    import sqlite3
    import time

    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "script.json").write_text(json.dumps({"m1": [WRITE, {"delay": 3, "text": "fixed"}]}))
    procs: list[subprocess.Popen] = [subprocess.Popen(
        [FLOTILLA, "fake-provider", "--script", str(tmp_path / "script.json"), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        repo, _remote = project_with_remote(tmp_path, url)
        head = sh(repo, "git", "rev-parse", "HEAD")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
        env.update(FAKE_PROVIDER_KEY="test-key", FLOTILLA_DATABASE_URL=database_url)
        wait_for(lambda: counts(url) == {})
        race = subprocess.Popen([FLOTILLA, "race", "Fix add", "-m", "fake:m1", "--check", CHECK, "--queue", "--json"],
                                cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        home = tmp_path / "w1"
        home.mkdir()
        worker = subprocess.Popen([FLOTILLA, "worker", "--dead-after", "2"], cwd=home,
                                  env={**env, "FLOTILLA_CACHE_DIR": str(home / "cache")},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs += [race, worker]
        wait_for(lambda: counts(url).get("m1") == 2 or race.poll() is not None, timeout=60)
        race.send_signal(signal.SIGKILL)  # the orchestrator dies while the worker's attempt is in flight
        race.wait(timeout=10)
        store = repo / ".flotilla" / "flotilla.db"
        with sqlite3.connect(store) as c:
            (race_id,) = c.execute("SELECT id FROM runs WHERE kind = 'race'").fetchone()
        owner = executors(database_url)[race_id]
        time.sleep(6)  # several heartbeats past dead_after: a worker that adopted the race would have by now
        assert executors(database_url)[race_id] == owner  # still the dead orchestrator's
        assert sh(repo, "git", "rev-parse", "HEAD") == head  # nobody merged behind the user's back
        resumed = subprocess.run([FLOTILLA, "resume", race_id, "--json"], cwd=repo, env=env, capture_output=True,
                                 text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        outcome = json.loads(resumed.stdout)
        assert outcome["winner"] == "a1" and outcome["merged"]
        assert (repo / "calc.py").read_text() == FIXED
        with sqlite3.connect(store) as c:
            (status,) = c.execute("SELECT status FROM runs WHERE id = ?", (race_id,)).fetchone()
        assert status == "done"  # concluded here, in the project's own store
    finally:
        stop_all(procs)
