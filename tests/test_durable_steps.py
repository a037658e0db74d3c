"""The loop's seam: a toy agent (model call → tool call → model call) through InMemorySteps
and through DurableSteps inside a workflow, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla import durable
from flotilla.agents.tools.base import ToolOutput
from flotilla.agents.seam import InMemorySteps
from flotilla.protocols import Steps
from flotilla.durable import DurableSteps
from flotilla.messages import Message, MessagesRequest, ToolResultBlock, ToolSpec
from flotilla.testing import ScriptedModel, reply, tool_call

MODELS: dict[str, ScriptedModel] = {}
TOOL_CALLS: list[dict] = []
ECHO = ToolSpec(name="Echo", description="echoes", input_schema={"type": "object"})


async def echo(input: dict) -> ToolOutput:
    TOOL_CALLS.append(input)
    return ToolOutput(content=f"echo: {input['text']}", files_changed=["echo.txt"])


async def toy_agent(model: ScriptedModel, prompt: str, steps: Steps) -> dict:
    """The loop's shape in miniature: ask the model, run the tools it asks for, repeat."""
    messages = [Message(role="user", content=prompt)]
    for turn in range(5):
        request = MessagesRequest(model=model.name, messages=list(messages), tools=[ECHO])
        response = await steps.model_call(f"turn-{turn}", lambda: model.request(request))
        messages.append(Message(role="assistant", content=response.content))
        uses = response.tool_uses()
        if not uses:
            return {"text": response.text(), "turns": turn + 1, "messages": [m.wire() for m in messages]}
        results = []
        for use in uses:
            out = await steps.tool_call(use.id, lambda use=use: echo(use.input))
            results.append(ToolResultBlock(tool_use_id=use.id, content=out.content, is_error=out.is_error))
        messages.append(Message(role="user", content=results))
    raise AssertionError("the script should end within five turns")


@durable.workflow("test.toy_agent")
async def toy_agent_workflow(model_key: str, prompt: str) -> dict:
    steps = DurableSteps()
    result = await toy_agent(MODELS[model_key], prompt, steps)
    return {**result, "executed": steps.executed, "replayed": steps.replayed}


def script() -> ScriptedModel:
    return ScriptedModel([tool_call("Echo", {"text": "hi"}, text="let me echo"), reply("done: echo: hi")])


@pytest.fixture
def runtime(tmp_path: Path):
    rt = durable.launch(f"sqlite:///{tmp_path / 'flotilla.db'}")
    yield rt
    durable.shutdown()


async def test_in_memory_steps_run_each_call_once() -> None:
    TOOL_CALLS.clear()
    model, steps = script(), InMemorySteps()
    result = await toy_agent(model, "say hi", steps)
    assert result["text"] == "done: echo: hi" and result["turns"] == 2
    assert steps.executed == 3 and len(model.calls) == 2 and TOOL_CALLS == [{"text": "hi"}]
    model.assert_consumed()
    # The second model call saw the tool's result.
    assert model.calls[1].messages[-1].content[0].text() == "echo: hi"


async def test_durable_steps_give_the_same_run_and_record_each_call(runtime) -> None:
    TOOL_CALLS.clear()
    MODELS["a"] = model = script()
    handle = await durable.start(toy_agent_workflow, "a", "say hi", workflow_id="toy-1")
    result = await handle.result()
    plain = await toy_agent(script(), "say hi", InMemorySteps())
    assert result["text"] == plain["text"] and result["turns"] == plain["turns"]
    assert [m["role"] for m in result["messages"]] == [m["role"] for m in plain["messages"]]
    assert (result["executed"], result["replayed"]) == (3, 0)
    model.assert_consumed()
    assert len(TOOL_CALLS) == 2  # once in the workflow, once in the plain run
    names = [s.name for s in durable.recorded_steps("toy-1")]
    tool_id = model.steps[0].content[1].id
    assert names == ["model:turn-0", f"tool:{tool_id}", "model:turn-1"]


async def test_durable_steps_outside_a_workflow_just_run() -> None:
    steps = DurableSteps()
    result = await toy_agent(script(), "say hi", steps)
    assert result["text"] == "done: echo: hi" and steps.executed == 3


async def test_starting_a_run_id_twice_does_not_run_it_twice(runtime) -> None:
    MODELS["b"] = model = script()
    first = await (await durable.start(toy_agent_workflow, "b", "say hi", workflow_id="toy-2")).result()
    again = await (await durable.start(toy_agent_workflow, "b", "say hi", workflow_id="toy-2")).result()
    assert again == first and len(model.calls) == 2
