"""What the sandbox costs: bubblewrap against the unconfined path, per Bash call and per race.

1. The real ``Bash`` tool, 200 calls of ``true`` and 200 of ``python -c pass``,
   confined (bwrap) and unconfined, alternating in rounds so that the
   machine's load falls on both alike; and 100 calls of ``true`` with
   ``allow_hosts`` set (the proxy bridge starts inside each call).
2. A race of 8 scripted attempts (each reads a file, runs one Bash command,
   edits the file and ends; the check is ``true``), sandbox on (checks
   confined too) against off, best of 3 each.

Run: .venv/bin/python bench/sandbox.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flotilla.agents.tools import Bash, ToolContext
from flotilla.config import Settings
from flotilla.patterns.race import AttemptPlan, RaceOptions, run_race
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.workspaces.sandbox import sandbox_for, unusable

CALLS = 200
ROUNDS = 4
N = 8


def per_call(workdir: Path, command: str, sandbox: object, calls: int) -> list[float]:
    tool, context = Bash(), ToolContext(root=workdir, sandbox=sandbox)

    async def go() -> list[float]:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            out = await tool.call({"command": command}, context)
            times.append(time.perf_counter() - start)
            assert not out.is_error, out.content
        return times

    return asyncio.run(go())


def settings(root: Path, **sandbox: object) -> Settings:
    return Settings({"model": "scripted:m0", "sandbox": sandbox}, {}, root)


def bench_calls(tmp: Path) -> None:
    work = tmp / "w"
    work.mkdir()
    on = sandbox_for(settings(work, mode="required"))
    off = sandbox_for(settings(work, mode="off"))
    proxied = sandbox_for(settings(work, mode="required", allow_hosts=["localhost"]))
    python = f"{os.path.realpath(sys.executable)} -I -S -c pass"
    print(f"per Bash call, {CALLS} calls each, {ROUNDS} alternating rounds (mean ms; median in brackets)")
    for label, command in (("true", "true"), ("python -c pass", python)):
        confined: list[float] = []
        plain: list[float] = []
        for _ in range(ROUNDS):
            plain += per_call(work, command, off, CALLS // ROUNDS)
            confined += per_call(work, command, on, CALLS // ROUNDS)
        p, c = statistics.mean(plain) * 1000, statistics.mean(confined) * 1000
        print(f"  {label:<15} unconfined {p:6.2f} ({statistics.median(plain) * 1000:.2f})   "
              f"bwrap {c:6.2f} ({statistics.median(confined) * 1000:.2f})   added {c - p:+.2f} ms")
    bridged = per_call(work, "true", proxied, CALLS // 2)
    b = statistics.mean(bridged) * 1000
    print(f"  {'true, allow_hosts':<15} bwrap + proxy bridge {b:6.2f} ({statistics.median(bridged) * 1000:.2f})")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def race_once(root: Path, store: SQLiteStore, sandbox: dict[str, object]) -> float:
    def factory(name: str) -> ScriptedModel:
        return ScriptedModel([tool_call("Read", {"file_path": "pkg/mod0.py"}),
                              tool_call("Bash", {"command": "ls pkg | wc -l"}),
                              tool_call("Edit", {"file_path": "pkg/mod0.py", "old_string": "x + VALUE",
                                                 "new_string": "VALUE + x"}),
                              reply("done")], name=name)

    plans = [AttemptPlan(f"a{i + 1}", "implementer", f"scripted:m{i}") for i in range(N)]
    options = RaceOptions(spec="swap the operands", check="true", plans=plans, pick="manual")
    start = time.perf_counter()
    outcome = asyncio.run(run_race(options, root=root, store=store, settings=settings(root, **sandbox),
                                   model_factory=factory))
    elapsed = time.perf_counter() - start
    assert outcome.winner is not None, [a.error for a in outcome.attempts]
    for attempt in outcome.attempts:  # the branches still there (a race may delete the losers' itself)
        subprocess.run(["git", "branch", "-D", attempt.branch], cwd=root, capture_output=True)
    return elapsed


def bench_race(tmp: Path) -> None:
    root = tmp / "repo"
    (root / "pkg").mkdir(parents=True)
    for i in range(50):
        (root / "pkg" / f"mod{i}.py").write_text(f"VALUE = {i}\n\n\ndef f(x):\n    return x + VALUE\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "init")
    store = SQLiteStore(tmp / "store.db")
    on, off = [], []
    for _ in range(3):
        off.append(race_once(root, store, {"mode": "off"}))
        on.append(race_once(root, store, {"mode": "required", "checks": True}))
    print(f"race of {N} scripted attempts (Read, Bash, Edit; check `true`), best of 3: sandbox off {min(off):.3f}s, "
          f"on {min(on):.3f}s (checks confined too); added {(min(on) - min(off)) * 1000:.0f} ms per race, "
          f"{(min(on) - min(off)) / N * 1000:.1f} ms per attempt")


def main() -> None:
    problem = unusable(shutil.which("bwrap"))
    if problem:
        sys.exit(f"bench/sandbox.py needs a working bubblewrap: {problem}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        bench_calls(Path(tmp))
        bench_race(Path(tmp))


if __name__ == "__main__":
    main()
