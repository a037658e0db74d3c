"""The Anthropic adapter over loopback: the official SDK against the fake provider."""

from __future__ import annotations

from flotilla.messages import (
    ContentBlockDelta,
    Message,
    MessagesRequest,
    MessageStart,
    MessageStop,
    StreamAccumulator,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolSpec,
)
from flotilla.models.anthropic import AnthropicModel

READ = ToolSpec(name="Read", description="Read a file", input_schema={
    "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]})


def ask(*messages: Message, **fields) -> MessagesRequest:
    return MessagesRequest(model="ignored", messages=list(messages) or [Message(role="user", content="hello")],
                           max_tokens=256, **fields)


async def collect(model, request, **options):
    accumulator, events = StreamAccumulator(), []
    async for event in model.stream(request, **options):
        events.append(event)
        accumulator.add(event)
    return events, accumulator.result()


async def test_plain_answer_with_usage_and_cache_tokens(fake_provider) -> None:
    fp = fake_provider({"claude-t": [{"text": "plain answer", "cache_read": 40, "cache_write": 8,
                                      "input_tokens": 12, "output_tokens": 3}]})
    model = AnthropicModel("claude-t", base_url=fp.url, api_key="k")
    response = await model.request(ask())
    assert model.name == "anthropic:claude-t"
    assert response.text() == "plain answer" and response.stop_reason == "end_turn"
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (12, 3, 40, 8)
    assert fp.received[0].body["model"] == "claude-t" and "stream" not in fp.received[0].body


async def test_stream_yields_canonical_events_that_fold_into_the_answer(fake_provider) -> None:
    fp = fake_provider({"claude-t": [{"thinking": "weigh it", "text": "streamed answer", "cache_read": 5}]})
    events, response = await collect(AnthropicModel("claude-t", base_url=fp.url, api_key="k"), ask())
    assert isinstance(events[0], MessageStart) and isinstance(events[-1], MessageStop)
    assert sum(isinstance(e, ContentBlockDelta) and e.delta["type"] == "text_delta" for e in events) > 1
    thinking, text = response.content
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking == "weigh it" and thinking.signature
    assert isinstance(text, TextBlock) and text.text == "streamed answer"
    assert response.usage.cache_read_input_tokens == 5 and response.usage.output_tokens > 0
    assert fp.received[0].body["stream"] is True


async def test_tool_round_trip(fake_provider) -> None:
    fp = fake_provider({"claude-t": [
        {"text": "I will read it.", "tool_uses": [{"name": "Read", "input": {"file_path": "/x/a.py"}}]},
        {"text": "It defines main()."},
    ]})
    model = AnthropicModel("claude-t", base_url=fp.url, api_key="k")
    first = ask(Message(role="user", content="what is in a.py?"), tools=[READ])
    _, answer = await collect(model, first)
    [call] = answer.tool_uses()
    assert (call.name, call.input, answer.stop_reason) == ("Read", {"file_path": "/x/a.py"}, "tool_use")
    second = ask(*first.messages, Message(role="assistant", content=answer.content),
                 Message(role="user", content=[ToolResultBlock(tool_use_id=call.id, content="def main(): ...")]),
                 tools=[READ])
    final = await model.request(second)
    assert final.text() == "It defines main()."
    sent = fp.received[1].body
    assert sent["messages"][1]["content"][1] == {"type": "tool_use", "id": call.id, "name": "Read",
                                                 "input": {"file_path": "/x/a.py"}}
    assert sent["messages"][2]["content"][0]["tool_use_id"] == call.id
    assert sent["tools"][0]["input_schema"]["required"] == ["file_path"]


async def test_cache_control_thinking_unknown_fields_and_headers_pass_through(fake_provider) -> None:
    fp = fake_provider({"claude-t": {"text": "ok"}})
    model = AnthropicModel("claude-t", base_url=fp.url, api_key="k")
    block = TextBlock(text="long context", cache_control={"type": "ephemeral"})
    request = ask(Message(role="user", content=[block]), thinking={"type": "enabled", "budget_tokens": 2048},
                  context_management={"edits": []}, system=[TextBlock(text="be brief",
                                                                     cache_control={"type": "ephemeral"})])
    await model.request(request, headers={"anthropic-beta": "context-management-2025-06-27"})
    await collect(model, request, headers={"anthropic-beta": "x-beta"})
    plain, streamed = fp.received
    assert plain.body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert plain.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert plain.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert plain.body["context_management"] == {"edits": []}
    assert plain.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert streamed.headers["anthropic-beta"] == "x-beta" and streamed.body["context_management"] == {"edits": []}


async def test_count_tokens_asks_the_provider(fake_provider) -> None:
    fp = fake_provider({"claude-t": [{"text": "unused"}]})
    model = AnthropicModel("claude-t", base_url=fp.url, api_key="k")
    assert await model.count_tokens(ask(tools=[READ])) > 0
    assert fp.received[0].path == "/v1/messages/count_tokens" and "max_tokens" not in fp.received[0].body
    assert fp.count("claude-t") == 0


async def test_a_consumer_that_stops_early_releases_the_stream(fake_provider) -> None:
    fp = fake_provider({"claude-t": {"text": "a fairly long answer to stop reading"}})
    model = AnthropicModel("claude-t", base_url=fp.url, api_key="k")
    stream = model.stream(ask())
    assert isinstance(await anext(stream), MessageStart)
    await stream.aclose()
    assert (await model.request(ask())).text().startswith("a fairly")




async def test_a_system_message_mid_conversation_is_sent_as_it_stands(fake_provider) -> None:
    fp = fake_provider({"claude-t": {"text": "ok"}})
    model = AnthropicModel("claude-t", base_url=fp.url, api_key="k")
    await model.request(ask(Message(role="user", content="hi"), Message(role="system", content="Plan mode is on."),
                            Message(role="user", content="go")))
    sent = fp.received[0].body["messages"]
    assert sent[1] == {"role": "system", "content": "Plan mode is on."}
