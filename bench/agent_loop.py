"""Agent-loop benchmark: runtime overhead per turn, and memory per running agent.

1. Overhead per turn, zero-latency model, tool time excluded: ``run_agent``
   (model stack, permissions, seam, events, store writes) against a bare loop
   that calls the same scripted model and the same no-op tool directly.
   Targets: runtime overhead <= 2 ms per turn.
2. Memory per running agent: 100 agents in one process, all mid-run at once
   (each 10 turns into its transcript, waiting on its model), measured with
   tracemalloc and RSS. Target <= 5 MB each.

Run: .venv/bin/python bench/agent_loop.py
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from flotilla.agents import AgentSpec, Limits, run_agent
from flotilla.agents.tools.base import ToolOutput
from flotilla.config import Settings
from flotilla.messages import Message, MessagesRequest, MessagesResponse, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock, Usage
from flotilla.store import SQLiteStore
from flotilla.testing import FunctionModel

TURNS = 20
RUNS = 100
OUTPUT = "x" * 1000  # what the no-op tool returns: a realistic-size tool result


class Noop:
    """A tool that does nothing: the loop's cost around a tool call, without the tool."""

    name, description, read_only = "Noop", "does nothing", True
    input_schema: dict[str, Any] = {"type": "object", "properties": {"n": {"type": "integer"}}}

    async def call(self, input: dict[str, Any], context: Any) -> ToolOutput:
        return ToolOutput(OUTPUT)


def scripted(turns: int, gate: asyncio.Event | None = None, name: str = "scripted:bench") -> FunctionModel:
    """Asks for the Noop tool ``turns - 1`` times, then ends; waits on ``gate`` before the last answer."""
    count = 0
    usage = Usage(input_tokens=1000, output_tokens=50)

    async def answer(request: MessagesRequest) -> MessagesResponse:
        nonlocal count
        count += 1
        if count < turns:
            return MessagesResponse(id=f"m{count}", model="bench", stop_reason="tool_use", usage=usage,
                                    content=[TextBlock(text="step"),
                                             ToolUseBlock(id=f"t{count}", name="Noop", input={"n": count})])
        if gate is not None:
            await gate.wait()
        return MessagesResponse(id=f"m{count}", model="bench", stop_reason="end_turn", usage=usage,
                                content=[TextBlock(text="done")])

    return FunctionModel(answer, name=name)


async def bare_loop(model: FunctionModel, tool: Noop) -> int:
    """The least a loop can do: call the model, call the tool, append, repeat."""
    messages = [Message(role="user", content="task")]
    tools = [ToolSpec(name=tool.name, description=tool.description, input_schema=tool.input_schema)]
    turns = 0
    while True:
        response = await model.request(MessagesRequest(model=model.name, messages=messages, tools=tools))
        turns += 1
        messages.append(Message(role="assistant", content=response.content))
        calls = response.tool_uses()
        if not calls:
            return turns
        outputs = await asyncio.gather(*(tool.call(c.input, None) for c in calls))
        messages.append(Message(role="user", content=[ToolResultBlock(tool_use_id=c.id, content=o.content)
                                                      for c, o in zip(calls, outputs)]))


def _settings(root: Path) -> Settings:
    return Settings({"model": "scripted:bench"}, {}, root)


async def overhead(root: Path, store_kind: str) -> tuple[float, float]:
    """Milliseconds per turn: (run_agent, bare loop), medians over RUNS runs of TURNS turns."""
    spec = AgentSpec(name="bench", system_prompt="Benchmark.", tools=["Noop"])
    settings, agents = _settings(root), {"bench": spec}
    store = SQLiteStore(root / "bench.db") if store_kind == "file" else SQLiteStore(":memory:")
    runtime, bare = [], []
    for i in range(RUNS):
        model = scripted(TURNS)
        start = time.perf_counter()
        result = await run_agent(spec, "task", root, store=store, settings=settings, agents=agents,
                                 tools={"Noop": Noop()}, model_factory=lambda name, m=model: m)
        runtime.append((time.perf_counter() - start) * 1000 / result.turns)
        assert result.stop_reason == "end_turn" and result.turns == TURNS, result
        model = scripted(TURNS)
        start = time.perf_counter()
        turns = await bare_loop(model, Noop())
        bare.append((time.perf_counter() - start) * 1000 / turns)
    return statistics.median(runtime), statistics.median(bare)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def memory(root: Path, agents_n: int = 100, turns: int = 11) -> tuple[float, float]:
    """MB per running agent: (tracemalloc, RSS), all ``agents_n`` holding a 10-turn transcript at once."""
    spec = AgentSpec(name="bench", system_prompt="Benchmark.", tools=["Noop"])
    settings, agents = _settings(root), {"bench": spec}
    store = SQLiteStore(root / "memory.db")
    # One warm-up run so that imports and caches are not charged to the agents.
    await run_agent(spec, "warm", root, store=store, settings=settings, agents=agents, tools={"Noop": Noop()},
                    model_factory=lambda name: scripted(3))
    gc.collect()
    rss_before = rss_mb()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    gate = asyncio.Event()
    models = [scripted(turns, gate) for _ in range(agents_n)]
    tasks = [asyncio.create_task(run_agent(spec, f"task {i}", root, store=store, settings=settings, agents=agents,
                                           tools={"Noop": Noop()}, limits=Limits(),
                                           model_factory=lambda name, m=m: m))
             for i, m in enumerate(models)]
    while sum(len(m.calls) for m in models) < agents_n * turns:
        await asyncio.sleep(0.01)
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    rss_during = rss_mb()
    tracemalloc.stop()
    gate.set()
    results = await asyncio.gather(*tasks)
    assert all(r.stop_reason == "end_turn" for r in results)
    return (current - base) / 2**20 / agents_n, (rss_during - rss_before) / agents_n


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        print(f"agent loop benchmark: {RUNS} runs x {TURNS} turns, zero-latency scripted model, no-op tool "
              f"returning {len(OUTPUT)} chars\n")
        print(f"{'':34}{'run_agent':>12}{'bare loop':>12}{'overhead':>12}   target")
        for kind in ("memory", "file"):
            runtime, bare = await overhead(root, kind)
            print(f"{'ms per turn, ' + kind + ' SQLite store':34}{runtime:12.3f}{bare:12.3f}"
                  f"{runtime - bare:12.3f}   <= 2 ms")
        traced, rss = await memory(root)
        print("\nmemory per running agent, 100 concurrent, 10 turns of transcript each:")
        print(f"  tracemalloc {traced:.3f} MB   RSS {rss:.3f} MB   (target <= 5 MB)")


if __name__ == "__main__":
    asyncio.run(main())
