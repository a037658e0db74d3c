"""The gateway's CPU instructions per request, counted by callgrind: ours now beside ours at a git ref.

Throughput on a shared machine moves by 2x from one run to the next with what
else is running; instruction counts do not (callgrind counts what the process
executes, whatever the machine is doing). So this is the figure to hold a change
to "must not cost speed":

    python bench/gateway_instructions.py --baseline 6cc50fc     # before the hardening vs now
    python bench/gateway_instructions.py --baseline HEAD~3 --requests 500

Each gateway runs under ``valgrind --tool=callgrind`` (about 50x slower, so few
requests), is warmed, has its counters zeroed, then serves ``--requests``
requests at ``--concurrency`` from the fake upstream of bench/gateway.py;
kernel time (syscalls) is not counted. Needs valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "gateway_peers"))

import loadgen  # noqa: E402
import peers  # noqa: E402
from gateway import PROMPT, free_port, ready  # noqa: E402


async def fixed(port: int, raw: bytes, count: int, concurrency: int) -> int:
    """Sends ``count`` requests over ``concurrency`` keep-alive connections; the number that failed."""
    left, failed = count, 0

    async def worker() -> None:
        nonlocal left, failed
        conn = loadgen.Connection("127.0.0.1", port)
        try:
            while left > 0:
                left -= 1
                status, _, _ = await conn.send(raw)
                failed += status != 200
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


async def count(target: peers.Target, mode: str, args: argparse.Namespace, work: Path) -> float:
    """Instructions per request of one gateway in one mode."""
    out = work / f"{target.cwd.name}-{mode}.callgrind"
    for old in glob.glob(f"{out}*"):
        os.unlink(old)
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *target.cmd],
                            cwd=target.cwd, env=peers.environment(target),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = {"model": "claude-sonnet-5-5", "max_tokens": 256, "messages": PROMPT, "stream": mode == "stream"}
        raw = loadgen.build("127.0.0.1", target.port, "/v1/messages", json.dumps(body).encode(),
                            {"anthropic-version": "2023-06-01"})
        why = await ready(target.port, raw, proc, 300)
        if why:
            raise SystemExit(f"{target.name} did not start under valgrind: {why}")
        await fixed(target.port, raw, args.warmup, args.concurrency)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], capture_output=True, check=True)
        failed = await fixed(target.port, raw, args.requests, args.concurrency)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], capture_output=True, check=True)
        if failed:
            raise SystemExit(f"{target.name}: {failed} of {args.requests} requests failed")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    dump = sorted(glob.glob(f"{out}.*"))[0]  # the --dump, taken right after the counted requests
    with open(dump) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
    return total / args.requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REF", default="HEAD",
                        help="git refs to compare with (comma-separated; default HEAD: what is uncommitted)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "flotilla-bench"))
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        print("not run: valgrind is not installed (apt-get install valgrind)")
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "uvicorn", "upstream:app", "--port", str(up_port),
                                 "--log-level", "warning", "--no-access-log"], cwd=Path(__file__).parent / "gateway_peers")
    refs = args.baseline.split(",")
    results: dict[str, dict[str, float]] = {}
    try:
        for mode in ("plain", "stream"):
            # Each target in its own process; two at once keeps both cores busy without changing a count.
            targets = [peers.flotilla(work, free_port(), up_port)]
            targets += [peers.flotilla(work, free_port(), up_port, baseline=ref) for ref in refs]
            counted = []
            for i in range(0, len(targets), 2):
                counted += await asyncio.gather(*(count(t, mode, args, work) for t in targets[i:i + 2]))
            for target, n in zip(targets, counted):
                results.setdefault(target.name, {})[mode] = n
                print(f"  {target.name:<24} {mode:<6} {n / 1000:8.0f} k instructions/request", flush=True)
    finally:
        upstream.terminate()
        upstream.wait()
    ours = results["flotilla"]
    print(f"\n{'':<24}{'plain (k/req)':>16}{'stream (k/req)':>16}")
    for name, r in results.items():
        rel = "" if name == "flotilla" else "   ours/this: " + ", ".join(
            f"{ours[m] / r[m]:.3f}x" for m in ("plain", "stream"))
        print(f"{name:<24}{r['plain'] / 1000:>16.0f}{r['stream'] / 1000:>16.0f}{rel}")


if __name__ == "__main__":
    asyncio.run(main())
