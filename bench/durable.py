"""Checkpoint overhead per step: the same toy agent run in memory, on SQLite (WAL) and on Postgres.

Each step returns a model response of about 1.5 KB (a turn of text plus a tool call), the
size of what the agent loop records per model call. Target: at most 3 ms per step on SQLite.
Postgres runs when FLOTILLA_TEST_POSTGRES_URL is set (as .ci/run sets it), else it is skipped.

    .venv/bin/python bench/durable.py [steps]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from flotilla import durable
from flotilla.agents.seam import InMemorySteps
from flotilla.protocols import Steps
from flotilla.messages import MessagesResponse, TextBlock, ToolUseBlock, Usage

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
ROUNDS = 3
RESPONSE = MessagesResponse(
    id="msg_bench", model="bench", stop_reason="tool_use", usage=Usage(input_tokens=1200, output_tokens=300),
    content=[TextBlock(text="I will look at the failing test first. " * 25),
             ToolUseBlock(id="toolu_bench", name="Bash", input={"command": "pytest -x tests/test_x.py"})])


async def model() -> MessagesResponse:
    return RESPONSE


async def agent(n: int, steps: Steps) -> int:
    total = 0
    for i in range(n):
        response = await steps.model_call(f"turn-{i}", model)
        total += response.usage.output_tokens
    return total


@durable.workflow("bench.agent")
async def bench_agent(n: int) -> int:
    return await agent(n, durable.DurableSteps())


async def in_memory(n: int) -> float:
    started = time.perf_counter()
    await agent(n, InMemorySteps())
    return time.perf_counter() - started


async def durable_run(n: int) -> float:
    started = time.perf_counter()
    handle = await durable.start(bench_agent, n)
    await handle.result()
    return time.perf_counter() - started


def measure(url: str | None) -> tuple[float, float]:
    """Median seconds per step, and seconds for a workflow's start and finish alone."""
    if url is None:
        per_step = statistics.median(asyncio.run(in_memory(STEPS)) for _ in range(ROUNDS)) / STEPS
        return per_step, 0.0
    durable.launch(url)
    try:
        empty = statistics.median(asyncio.run(durable_run(0)) for _ in range(ROUNDS))
        full = statistics.median(asyncio.run(durable_run(STEPS)) for _ in range(ROUNDS))
    finally:
        durable.shutdown()
    return (full - empty) / STEPS, empty


def main() -> None:
    rows = [("in memory (no durability)", measure(None))]
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite, WAL, synchronous=NORMAL", measure(f"sqlite:///{Path(tmp) / 'flotilla.db'}")))
    base = os.environ.get("FLOTILLA_TEST_POSTGRES_URL")
    if base:
        rows.append(("Postgres (FLOTILLA_TEST_POSTGRES_URL)",
                     measure(f"{base.rpartition('/')[0]}/flotilla_bench_{uuid.uuid4().hex[:6]}")))
    print(f"checkpoint overhead per step, {STEPS} steps of a ~{len(RESPONSE.model_dump_json())} B model "
          f"response, median of {ROUNDS}")
    print(f"{'backend':40} {'per step':>10} {'overhead':>10} {'start+finish':>13}")
    memory = rows[0][1][0]
    for name, (per_step, start) in rows:
        overhead = per_step - memory
        print(f"{name:40} {per_step * 1000:8.3f}ms {overhead * 1000:8.3f}ms {start * 1000:11.1f}ms")
    if not base:
        print(f"{'Postgres':40} skipped: set FLOTILLA_TEST_POSTGRES_URL (.ci/run starts a server)")
    sqlite_overhead = rows[1][1][0] - memory
    print(f"target ≤ 3 ms per step on SQLite: {'met' if sqlite_overhead <= 0.003 else 'NOT met'} "
          f"({sqlite_overhead * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
