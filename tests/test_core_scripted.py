"""The scripted models fail loudly when the script and the calls disagree."""

import pytest

from flotilla.errors import ProviderError
from flotilla.messages import MessagesRequest, StreamAccumulator
from flotilla.testing import FunctionModel, ScriptedModel, ScriptError, fail, reply, tool_call

REQUEST = MessagesRequest(model="x", messages=[{"role": "user", "content": "hello"}])


async def test_plays_steps_in_order_and_records_calls():
    model = ScriptedModel([tool_call("Read", {"file_path": "a.py"}), fail(529), reply("done")], name="scripted:s")
    first = await model.request(REQUEST)
    assert first.stop_reason == "tool_use" and first.tool_uses()[0].name == "Read"
    with pytest.raises(ProviderError) as caught:
        await model.request(REQUEST)
    assert caught.value.status == 529 and caught.value.overloaded and caught.value.retryable
    accumulator = StreamAccumulator()
    async for event in model.stream(REQUEST):
        accumulator.add(event)
    assert accumulator.result().text() == "done"
    assert len(model.calls) == 3
    model.assert_consumed()


async def test_unexpected_call_and_unconsumed_steps_raise():
    model = ScriptedModel([reply("one"), reply("two")])
    await model.request(REQUEST)
    with pytest.raises(ScriptError, match="1 of 2 steps"):
        model.assert_consumed()
    await model.request(REQUEST)
    with pytest.raises(ScriptError, match="unexpected call #3"):
        await model.request(REQUEST)


async def test_function_model_fills_in_usage():
    model = FunctionModel(lambda request: f"you said {request.messages[-1].text()}", name="scripted:echo")
    response = await model.request(REQUEST)
    assert response.text() == "you said hello"
    assert response.model == "echo" and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
