"""kill -9 in the middle of a durable run, then a fresh process (running upgraded code) resumes it:
finished steps are not run again, the step in flight runs again, the run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flotilla import durable

# The worker is a script written to disk so the resuming process can run *changed* code:
# DBOS would version that by a hash of the source; flotilla's APP_VERSION keeps it resumable.
WORKER = '''
import asyncio, json, sys, time
from pathlib import Path
from flotilla import durable

url, log, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
block = log.with_suffix(".block")

@durable.workflow("test.crash_toy")
async def crash_toy(n: int) -> dict:
    steps = durable.DurableSteps()
    out = []
    for i in range(n):
        async def work(i=i) -> int:
            with log.open("a") as f:
                f.write(f"start {{i}}\\n")
            while i == 2 and block.exists():
                await asyncio.sleep(0.05)  # the step in flight when the process is killed
            with log.open("a") as f:
                f.write(f"end {{i}}\\n")
            return i * i
        out.append(await steps.step(f"work-{{i}}", work))
    return {{"squares": out, "code": "{version}", "executed": steps.executed, "replayed": steps.replayed}}

async def main() -> None:
    durable.launch(url)
    if mode == "start":
        await durable.start(crash_toy, 5, workflow_id="crashy")
        await asyncio.sleep(60)  # killed before this ends
    else:
        print(json.dumps(await durable.Handle("crashy").result()))
    durable.shutdown()

asyncio.run(main())
'''


def run_worker(tmp_path: Path, url: str, version: str, mode: str) -> subprocess.Popen:
    script = tmp_path / f"worker_{version}.py"
    script.write_text(WORKER.format(version=version))
    return subprocess.Popen([sys.executable, str(script), url, str(tmp_path / "steps.log"), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / '.flotilla' / 'flotilla.db'}"
    base = os.environ.get("FLOTILLA_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs FLOTILLA_TEST_POSTGRES_URL (a Postgres server; .ci/run starts one on loopback)")
    return f"{base.rpartition('/')[0]}/flotilla_{uuid.uuid4().hex[:8]}"


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_sigkill_mid_run_then_resume_runs_only_the_unfinished_steps(tmp_path: Path, url: str) -> None:
    log = tmp_path / "steps.log"
    (tmp_path / "steps.block").touch()
    first = run_worker(tmp_path, url, "v1", "start")
    try:
        wait_for(lambda: log.exists() and "start 2" in log.read_text())
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    assert log.read_text().split("\n")[:-1] == ["start 0", "end 0", "start 1", "end 1", "start 2"]

    # Seen from another process before anyone resumes it: its executor is gone, so it is resumable.
    durable.launch(url, recover=False)
    try:
        assert [(w.id, w.state) for w in durable.workflows(ids=["crashy"])] == [("crashy", "resumable")]
        assert [s.name for s in durable.recorded_steps("crashy")] == ["work-0", "work-1"]
    finally:
        durable.shutdown()

    (tmp_path / "steps.block").unlink()
    second = run_worker(tmp_path, url, "v2", "resume")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"squares": [0, 1, 4, 9, 16], "code": "v2", "executed": 3, "replayed": 2}
    starts = [line for line in log.read_text().split("\n") if line.startswith("start")]
    assert starts.count("start 0") == 1 and starts.count("start 1") == 1  # finished: not run again
    assert starts.count("start 2") == 2  # in flight at the kill: run again
    assert starts.count("start 3") == 1 and starts.count("start 4") == 1
