"""Durable runs on a real Postgres (started by .ci/run): the same workflow, and two worker
processes sharing a queue with a global and a per-worker limit, one killed, its work adopted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flotilla import durable
from flotilla.durable import DurableSteps

BASE_URL = os.environ.get("FLOTILLA_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not BASE_URL, reason="needs FLOTILLA_TEST_POSTGRES_URL (a Postgres server; "
                                                     ".ci/run starts one on loopback)")


def fresh_database() -> str:
    """A new database per test on the CI server; DBOS creates it on launch."""
    base, _, _ = (BASE_URL or "").rpartition("/")
    return f"{base}/flotilla_{uuid.uuid4().hex[:8]}"


@durable.workflow("test.pg_steps")
async def pg_steps(n: int) -> dict:
    steps = DurableSteps()
    values = []
    for i in range(n):
        async def square(i: int = i) -> int:
            return i * i
        values.append(await steps.step(f"sq-{i}", square))
    return {"values": values, "executed": steps.executed}


async def test_a_durable_workflow_on_postgres() -> None:
    runtime = durable.launch(fresh_database())
    try:
        assert runtime.is_postgres
        result = await (await durable.start(pg_steps, 4, workflow_id="pg-1")).result()
        assert result == {"values": [0, 1, 4, 9], "executed": 4}
        assert [w.state for w in durable.workflows(ids=["pg-1"])] == ["done"]
        assert [s.name for s in durable.recorded_steps("pg-1")] == ["sq-0", "sq-1", "sq-2", "sq-3"]
    finally:
        durable.shutdown()


# A worker as `flotilla worker` will be: listens to a queue, beats, adopts the work of dead ones.
WORKER = '''
import asyncio, sys, time
from pathlib import Path
from flotilla import durable

url, name, log = sys.argv[1], sys.argv[2], Path(sys.argv[3])

@durable.workflow("test.pg_job")
async def job(label: str) -> dict:
    steps = durable.DurableSteps()
    async def work() -> str:
        with log.open("a") as f:
            f.write(f"{{time.time()}} {{name}} start {{label}}\\n")
        await asyncio.sleep(1.0)
        with log.open("a") as f:
            f.write(f"{{time.time()}} {{name}} end {{label}}\\n")
        return name
    by = await steps.step("work", work)
    return {{"label": label, "by": by}}

async def main() -> None:
    durable.launch(url, executor_id=name, host=f"machine-{{name}}", listen=["attempts"], adopt=True,
                   heartbeat_interval=0.3, dead_after=2.0)
    durable.register_queue("attempts", concurrency=3, worker_concurrency=2, polling_interval=0.1)
    (log.parent / f"{{name}}.ready").touch()
    await asyncio.sleep(120)

asyncio.run(main())
'''


@durable.workflow("test.pg_job")
async def job(label: str) -> dict:  # the same name as the workers': this process only enqueues
    raise AssertionError("jobs run on the workers")


def test_two_workers_share_a_queue_and_the_survivor_adopts_the_dead_ones_work(tmp_path: Path) -> None:
    url, log = fresh_database(), tmp_path / "jobs.log"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format())
    durable.launch(url)  # creates the database before the workers race to
    workers = {}
    try:
        for name in ("a", "b"):
            workers[name] = subprocess.Popen([sys.executable, str(script), url, name, str(log)],
                                             stderr=subprocess.PIPE, text=True)
        wait_for(lambda: all((tmp_path / f"{n}.ready").exists() for n in workers))
        handles = asyncio.run(enqueue_all(6))
        # both workers busy before the kill, so the global limit is reached whatever the load on this machine
        wait_for(lambda: log.exists() and " a start " in log.read_text() and " b start " in log.read_text())
        workers["a"].send_signal(signal.SIGKILL)
        workers["a"].wait()
        killed_at = time.time()
        results = asyncio.run(results_of(handles))
    finally:
        for proc in workers.values():
            proc.kill()
            proc.wait()
        durable.shutdown()

    lines = [line.split() for line in log.read_text().splitlines()]
    started_on_a = {label for _, who, what, label in lines if who == "a" and what == "start"}
    ended_on_a = {label for _, who, what, label in lines if who == "a" and what == "end"}
    in_flight_on_a = started_on_a - ended_on_a
    assert in_flight_on_a, "worker a was killed with work in flight"
    assert sorted(r["label"] for r in results) == [f"job-{i}" for i in range(6)]
    for r in results:
        if r["label"] in in_flight_on_a:
            assert r["by"] == "b"  # adopted, and its unfinished step run again on b
    assert all(float(t) >= killed_at for t, who, what, label in lines if label in in_flight_on_a and who == "b")
    # The kill ended a's jobs in flight; then count the jobs running at once.
    lines = sorted(lines + [[str(killed_at), "a", "end", label] for label in in_flight_on_a], key=lambda x: float(x[0]))
    assert max_overlap(lines, who=None) == 3  # the global limit, reached
    assert max_overlap(lines, who="a") <= 2 and max_overlap(lines, who="b") == 2  # the per-worker limit


async def enqueue_all(n: int) -> list[durable.Handle]:
    return [await durable.enqueue("attempts", job, f"job-{i}", workflow_id=f"job-{i}") for i in range(n)]


async def results_of(handles: list[durable.Handle]) -> list[dict]:
    return await asyncio.wait_for(durable.wait_all(handles), timeout=90)


def max_overlap(lines: list[list[str]], who: str | None) -> int:
    """The most jobs running at once (on one worker, or on all), from the start/end lines."""
    running, peak = set(), 0
    for _, worker, what, label in lines:
        if who is not None and worker != who:
            continue
        key = (worker, label)
        if what == "start":
            running.add(key)
        else:
            running.discard(key)
        peak = max(peak, len(running))
    return peak


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
