"""An MCP tool call in a durable run is a step like any other: stopped and resumed, the run replays the
recorded answer instead of calling the server again, and the resumed run starts its servers anew."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from flotilla import durable
from flotilla.agents import run_agent
from flotilla.errors import Cancelled
from flotilla.messages import MessagesRequest, ToolResultBlock
from flotilla.store import SQLiteStore
from flotilla.testing import FunctionModel, reply, tool_call
from test_durable_steps import runtime  # noqa: F401 - the durable runtime fixture, on this test's SQLite file
from test_runtime_support import factory, settings_for, spec

COUNTER = '''
import sys
from pathlib import Path
from mcp.server.mcpserver import MCPServer

server = MCPServer("counter")
LOG = Path(sys.argv[1])

@server.tool()
def bump(label: str) -> str:
    """Appends a line to the log and says how many there are."""
    with LOG.open("a") as f:
        f.write(label + "\\n")
    return f"bumped {label}: {len(LOG.read_text().splitlines())} so far"

server.run("stdio")
'''
GATE = {"open": False}


async def answer(request: MessagesRequest):
    results = [b for b in request.messages[-1].blocks() if isinstance(b, ToolResultBlock)]
    if not results:
        return tool_call("mcp__counter__bump", {"label": "once"})
    while not GATE["open"]:  # the call in flight when the run is stopped
        await asyncio.sleep(0.02)
    return reply(f"the server said: {results[0].text()}")


MODEL = FunctionModel(answer, name="scripted:exec")


@durable.workflow("test.mcp_replay")
async def mcp_replay(root: str) -> dict:
    steps = durable.DurableSteps()
    result = await run_agent(spec(), "bump it", Path(root), store=SQLiteStore(Path(root) / "store.db"),
                             settings=settings_for(Path(root)), model_factory=factory(**{"scripted:exec": MODEL}),
                             model="scripted:exec", run_id="mcp-run", steps=steps)
    return {"text": result.text, "stop": result.stop_reason, "replayed": steps.replayed}


async def _second_model_call() -> None:
    while len(MODEL.calls) < 2:
        await asyncio.sleep(0.02)


async def test_a_resumed_run_replays_its_finished_mcp_call(tmp_path: Path, runtime) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "counter.py").write_text(COUNTER)
    log = tmp_path / "calls.log"
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"counter": {
        "command": sys.executable, "args": [str(tmp_path / "counter.py"), str(log)]}}}))
    GATE["open"] = False
    MODEL.calls.clear()
    handle = await durable.start(mcp_replay, str(tmp_path), workflow_id="mcp-replay")
    await asyncio.wait_for(_second_model_call(), 60)  # the MCP call is done and recorded; the next is in flight
    await durable.cancel(handle.id)
    with pytest.raises(Cancelled):
        await handle.result()
    assert log.read_text() == "once\n"

    GATE["open"] = True
    result = await durable.resume("mcp-replay").result()
    assert (result["stop"], result["text"]) == ("end_turn", "the server said: bumped once: 1 so far")
    assert log.read_text() == "once\n"  # the server was not called again
    store = SQLiteStore(tmp_path / "store.db")
    assert [e["tool"] for e in store.events("mcp-run", "ToolCalled")] == ["mcp__counter__bump"]
    assert len(store.events("mcp-run", "McpServerStarted")) == 2  # the first run's, and the resumed run's
    assert store.get_run("mcp-run")["status"] == "done"
