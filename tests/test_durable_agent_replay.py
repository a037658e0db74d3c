"""The real agent loop inside a workflow, stopped while a model call is in flight and resumed: the
finished model call and the three tool calls it asked for (run concurrently, finishing out of order)
are replayed from their records, the transcript in the store is not doubled, and the run ends done."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flotilla import durable
from flotilla.agents import run_agent
from flotilla.agents.tools.base import ToolOutput
from flotilla.errors import Cancelled
from flotilla.messages import MessagesRequest, ToolResultBlock
from flotilla.store import SQLiteStore
from flotilla.testing import FunctionModel, reply, tool_calls
from test_runtime_support import factory, settings_for, spec

GATE = {"open": False}
TOOL_RUNS: list[int] = []


class Slow:
    """A read-only tool that takes ``delay`` seconds, so concurrent calls finish out of order."""

    name = "Slow"
    description = "waits, then answers"
    input_schema = {"type": "object", "properties": {"n": {"type": "integer"}, "delay": {"type": "number"}}}
    read_only = True

    async def call(self, input: dict, context: object) -> ToolOutput:
        await asyncio.sleep(input["delay"])
        TOOL_RUNS.append(input["n"])
        return ToolOutput(f"slow {input['n']}")


async def answer(request: MessagesRequest):
    if not any(isinstance(b, ToolResultBlock) for b in request.messages[-1].blocks()):
        return tool_calls(("Slow", {"n": 1, "delay": 0.15}), ("Slow", {"n": 2, "delay": 0.0}),
                          ("Slow", {"n": 3, "delay": 0.05}))
    while not GATE["open"]:  # the call in flight when the run is stopped
        await asyncio.sleep(0.02)
    texts = [b.content for b in request.messages[-1].blocks() if isinstance(b, ToolResultBlock)]
    return reply(" / ".join(str(t) for t in texts))


MODEL = FunctionModel(answer, name="scripted:exec")


@durable.workflow("test.agent_replay")
async def agent_replay(root: str) -> dict:
    steps = durable.DurableSteps()
    # the durable executor's recorder: what the loop emits again while it replays is written once
    store = durable.Recorder(SQLiteStore(Path(root) / "store.db"), "replayed-run")
    result = await run_agent(spec(tools=["Slow"]), "go", Path(root), store=store,
                             settings=settings_for(Path(root)), model_factory=factory(**{"scripted:exec": MODEL}),
                             model="scripted:exec", run_id="replayed-run", tools={"Slow": Slow()}, steps=steps)
    return {"text": result.text, "stop": result.stop_reason, "turns": result.turns, "replayed": steps.replayed}


@pytest.fixture
def runtime(tmp_path: Path):
    rt = durable.launch(f"sqlite:///{tmp_path / 'flotilla.db'}")
    yield rt
    durable.shutdown()


async def test_a_stopped_agent_run_resumes_replaying_its_finished_calls(tmp_path: Path, runtime) -> None:
    GATE["open"] = False
    TOOL_RUNS.clear()
    MODEL.calls.clear()
    handle = await durable.start(agent_replay, str(tmp_path), workflow_id="agent-replay")
    while len(MODEL.calls) < 2:
        await asyncio.sleep(0.02)
    await durable.cancel(handle.id)
    with pytest.raises(Cancelled):
        await handle.result()
    assert sorted(TOOL_RUNS) == [1, 2, 3] and TOOL_RUNS != [1, 2, 3]  # they finished out of order

    GATE["open"] = True
    result = await durable.resume("agent-replay").result()
    assert result["stop"] == "end_turn" and result["turns"] == 2
    assert result["text"] == "slow 1 / slow 2 / slow 3"  # each result matched to its own call
    assert len(TOOL_RUNS) == 3  # no tool ran again
    assert len(MODEL.calls) == 3  # the first call was replayed; the one in flight ran again
    assert result["replayed"] >= 4  # one model call and three tool calls (and the steering checks)
    store = SQLiteStore(tmp_path / "store.db")
    roles = [e["message"]["role"] for e in store.events("replayed-run", "MessageAdded")]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert len(store.events("replayed-run", "ToolCalled")) == 3
    assert store.get_run("replayed-run")["status"] == "done"
