"""MCP benchmark: what one stdio MCP server adds to a run's start, and to each tool call.

1. Start-up: a one-turn ``run_agent`` in a project without ``.mcp.json``, against the same run
   with one stdio server (``mcp-server-time`` from PyPI) that flotilla starts, lists and stops;
   beside them, the same server started and stopped through the SDK directly (no guard process,
   no run), so the guard's own cost shows.
2. Per call: ``run_agent`` turns that each call the server's ``get_current_time`` through the
   loop (permissions, hooks, the seam, events, the store), against the same number of direct
   ``Client.call_tool`` calls on an SDK connection to the same server. The zero-latency scripted
   model's turn with a no-op tool is printed too, so the MCP path's own share can be read off.

Run: .venv/bin/python bench/mcp.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file's folder comes first on sys.path and its name is the SDK's: drop it, so `mcp` is the SDK.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from typing import Any

from flotilla.agents import AgentSpec, run_agent
from flotilla.agents.mcp import GUARD
from flotilla.agents.tools.base import ToolOutput
from flotilla.config import Settings
from flotilla.events import ListSink, ToolCalled
from flotilla.messages import MessagesRequest, MessagesResponse, TextBlock, ToolUseBlock, Usage
from flotilla.store import SQLiteStore
from flotilla.testing import FunctionModel

STARTS = 12
CALLS = 100
SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}


class Noop:
    name, description, read_only = "Noop", "does nothing", True
    input_schema: dict[str, Any] = {"type": "object"}

    async def call(self, input: dict[str, Any], context: Any) -> ToolOutput:
        return ToolOutput("ok")


def model(turns: int, tool: str, args: dict[str, Any], stamps: list[tuple[float, float]] | None = None,
          direct: Any = None, direct_times: list[float] | None = None) -> FunctionModel:
    """Calls ``tool`` ``turns - 1`` times, then ends. Notes when each answer starts and ends in ``stamps``;
    with ``direct`` (an SDK client), makes the same call directly inside each answer, timed into ``direct_times``,
    so that the loop's calls and the direct ones alternate one by one under the same machine load."""
    count = 0

    async def answer(request: MessagesRequest) -> MessagesResponse:
        nonlocal count
        count += 1
        began = time.perf_counter()
        if direct is not None and direct_times is not None:
            result = await direct.call_tool("get_current_time", {"timezone": "UTC"})
            assert not result.is_error
            direct_times.append((time.perf_counter() - began) * 1000)
        if stamps is not None:
            stamps.append((began, time.perf_counter()))
        usage = Usage(input_tokens=100, output_tokens=10)
        if count < turns:
            return MessagesResponse(id=f"m{count}", model="bench", stop_reason="tool_use", usage=usage,
                                    content=[ToolUseBlock(id=f"t{count}", name=tool, input=args)])
        return MessagesResponse(id=f"m{count}", model="bench", stop_reason="end_turn", usage=usage,
                                content=[TextBlock(text="done")])

    return FunctionModel(answer, name="scripted:bench")


def project(root: Path, with_server: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    if with_server:
        (root / ".mcp.json").write_text(json.dumps({"mcpServers": {"time": SERVER}}))
    return root


async def one_run(root: Path, turns: int, tool: str, args: dict[str, Any], tools: dict[str, Any] | None = None,
                  sink: ListSink | None = None, **timing: Any) -> tuple[float, int]:
    spec = AgentSpec(name="bench", system_prompt="Benchmark.")
    settings = Settings({"model": "scripted:bench"}, {}, root)
    m = model(turns, tool, args, **timing)
    start = time.perf_counter()
    result = await run_agent(spec, "task", root, store=SQLiteStore(":memory:"), settings=settings, agents={},
                             tools=tools, model_factory=lambda name: m, sink=sink)
    elapsed = (time.perf_counter() - start) * 1000
    assert result.stop_reason == "end_turn" and result.turns == turns, (result.error, result.denials)
    return elapsed, result.turns


def guard_alone() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-S", str(GUARD), "true"], check=True)
    return (time.perf_counter() - start) * 1000


async def sdk_start_stop() -> float:
    from mcp import Client, StdioServerParameters

    start = time.perf_counter()
    async with Client(StdioServerParameters(command=SERVER["command"], args=SERVER["args"])) as client:
        await client.list_tools()
    return (time.perf_counter() - start) * 1000


async def main() -> None:
    os.environ.setdefault("CLAUDE_CONFIG_DIR", tempfile.mkdtemp())  # not this machine's ~/.claude
    with tempfile.TemporaryDirectory() as folder:
        bare, served = project(Path(folder) / "bare", False), project(Path(folder) / "served", True)
        print(f"MCP benchmark: mcp-server-time over stdio, zero-latency scripted model; load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
        await one_run(served, 1, "", {})  # warm imports and the server's own first start
        samples: dict[str, list[float]] = {"without": [], "with": [], "sdk": [], "guard": []}
        for _ in range(STARTS):  # interleaved, so that the machine's changing load falls on each alike
            samples["without"].append((await one_run(bare, 1, "", {}))[0])
            samples["with"].append((await one_run(served, 1, "", {}))[0])
            samples["sdk"].append(await sdk_start_stop())
            samples["guard"].append(guard_alone())
        without, with_server, direct, guard = (statistics.median(samples[k]) for k in ("without", "with", "sdk", "guard"))
        print(f"start-up, median of {STARTS} one-turn runs (start, list tools, stop included):")
        print(f"  run_agent, no MCP server          {without:9.1f} ms")
        print(f"  run_agent, one stdio server       {with_server:9.1f} ms   added {with_server - without:.1f} ms")
        print(f"  SDK alone: start, list, stop      {direct:9.1f} ms   (flotilla's guard and wiring: "
              f"{with_server - without - direct:+.1f} ms)")
        print(f"  the guard process alone ({GUARD.name} running `true`) {guard:.1f} ms\n")

        # A turn is the time from the end of one answer to the start of the next: the tool call and the loop
        # around it. The first call to a fresh server (its own warm-up) is left out on both sides.
        from mcp import Client, StdioServerParameters

        stamps: list[tuple[float, float]] = []
        direct: list[float] = []
        sink = ListSink()
        async with Client(StdioServerParameters(command=SERVER["command"], args=SERVER["args"])) as client:
            await client.list_tools()
            await one_run(served, CALLS + 2, "mcp__time__get_current_time", {"timezone": "UTC"}, sink=sink,
                          stamps=stamps, direct=client, direct_times=direct)
        noop_stamps: list[tuple[float, float]] = []
        await one_run(bare, CALLS + 2, "Noop", {}, tools={"Noop": Noop()}, stamps=noop_stamps)
        turn = lambda marks: [(b[0] - a[1]) * 1000 for a, b in zip(marks[1:], marks[2:])]  # noqa: E731
        per_mcp_turn, per_noop_turn = statistics.median(turn(stamps)), statistics.median(turn(noop_stamps))
        direct_call = statistics.median(direct[1:])
        seam_call = statistics.median([e.duration_ms for e in sink.of(ToolCalled)][1:])
        print(f"per tool call, medians of {CALLS} calls, the loop's and the direct ones alternating:")
        print(f"  direct SDK call_tool               {direct_call:9.2f} ms")
        print(f"  the call as timed in the loop      {seam_call:9.2f} ms   (McpTool, the connection's task)")
        print(f"  run_agent turn with the MCP call   {per_mcp_turn:9.2f} ms   added {per_mcp_turn - direct_call:.2f} ms"
              " over the direct call")
        print(f"  run_agent turn with a no-op tool   {per_noop_turn:9.2f} ms   (the loop's own share of that)")


if __name__ == "__main__":
    asyncio.run(main())
