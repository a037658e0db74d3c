"""The OpenAI adapter over loopback: canonical messages ⇄ Chat Completions with the official SDK."""

from __future__ import annotations

from flotilla.messages import (
    ContentBlockDelta,
    ContentBlockStart,
    ImageBlock,
    Message,
    MessagesRequest,
    StreamAccumulator,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from flotilla.models.chat import clean_gemini_schema, from_chat_response, to_chat_request
from flotilla.models.openai import OpenAIModel

READ = ToolSpec(name="Read", description="Read a file", input_schema={
    "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
    cache_control={"type": "ephemeral"})
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def ask(*messages: Message, **fields) -> MessagesRequest:
    return MessagesRequest(model="ignored", messages=list(messages) or [Message(role="user", content="hello")],
                           max_tokens=256, **fields)


def model_for(fp, name: str = "gpt-t") -> OpenAIModel:
    return OpenAIModel(name, base_url=fp.url + "/v1", api_key="k", provider="openrouter")


async def collect(model, request):
    accumulator, events = StreamAccumulator(), []
    async for event in model.stream(request):
        events.append(event)
        accumulator.add(event)
    return events, accumulator.result()


async def test_plain_answer_maps_usage_with_cached_tokens(fake_provider) -> None:
    fp = fake_provider({"gpt-t": [{"text": "plain", "input_tokens": 30, "cache_read": 70, "output_tokens": 4}]})
    model = model_for(fp)
    response = await model.request(ask(system="be brief"))
    assert model.name == "openrouter:gpt-t" and response.text() == "plain" and response.stop_reason == "end_turn"
    u = response.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.output_tokens) == (30, 70, 4)  # 100 prompt - 70 cached
    sent = fp.received[0].body
    assert sent["messages"][0] == {"role": "system", "content": "be brief"} and sent["max_tokens"] == 256


async def test_stream_reassembles_text_thinking_and_usage(fake_provider) -> None:
    fp = fake_provider({"gpt-t": [{"thinking": "step by step", "text": "streamed", "cache_read": 2}]})
    events, response = await collect(model_for(fp), ask())
    thinking, text = response.content
    assert isinstance(thinking, ThinkingBlock) and thinking.thinking == "step by step"
    assert isinstance(text, TextBlock) and text.text == "streamed"
    assert response.usage.output_tokens > 0 and response.usage.cache_read_input_tokens == 2
    assert fp.received[0].body["stream_options"] == {"include_usage": True}
    assert [e.index for e in events if isinstance(e, ContentBlockStart)] == [0, 1]


async def test_tool_round_trip_with_streamed_argument_deltas(fake_provider) -> None:
    fp = fake_provider({"gpt-t": [
        {"tool_uses": [{"name": "Read", "input": {"file_path": "/x/a.py"}},
                       {"name": "Read", "input": {"file_path": "/x/b.py"}}]},
        {"text": "Both define main()."},
    ]})
    model = model_for(fp)
    cached = TextBlock(text="read a.py and b.py", cache_control={"type": "ephemeral"})
    first = ask(Message(role="user", content=[cached]), tools=[READ])
    events, answer = await collect(model, first)
    assert answer.stop_reason == "tool_use"
    assert [c.input for c in answer.tool_uses()] == [{"file_path": "/x/a.py"}, {"file_path": "/x/b.py"}]
    assert sum(isinstance(e, ContentBlockDelta) and e.delta["type"] == "input_json_delta" for e in events) > 2
    a, b = answer.tool_uses()
    second = ask(*first.messages, Message(role="assistant", content=answer.content),
                 Message(role="user", content=[ToolResultBlock(tool_use_id=a.id, content="def main(): ..."),
                                               ToolResultBlock(tool_use_id=b.id, content="boom", is_error=True)]),
                 tools=[READ])
    assert (await model.request(second)).text() == "Both define main()."
    sent = fp.received[1].body
    assistant = sent["messages"][1]
    assert [c["id"] for c in assistant["tool_calls"]] == [a.id, b.id]
    assert assistant["tool_calls"][0]["function"] == {"name": "Read", "arguments": '{"file_path": "/x/a.py"}'}
    assert sent["messages"][2:] == [{"role": "tool", "tool_call_id": a.id, "content": "def main(): ..."},
                                    {"role": "tool", "tool_call_id": b.id, "content": "Error: boom"}]
    tool = sent["tools"][0]
    assert tool["type"] == "function" and tool["function"]["name"] == "Read"
    assert "cache_control" not in str(sent)


async def test_images_and_a_system_message_mid_conversation(fake_provider) -> None:
    fp = fake_provider({"gpt-t": {"text": "seen"}})
    conversation = [
        Message(role="user", content=[TextBlock(text="look"), ImageBlock(source=PNG)]),
        Message(role="assistant", content=[ToolUseBlock(id="call_1", name="Screenshot", input={})]),
        Message(role="user", content=[ToolResultBlock(tool_use_id="call_1", content=[
            TextBlock(text="screenshot taken"), ImageBlock(source={"type": "url", "url": "https://x/y.png"})])]),
        Message(role="system", content="The user switched to plan mode."),
        Message(role="user", content="and now?"),
    ]
    await model_for(fp).request(ask(*conversation))
    sent = fp.received[0].body["messages"]
    assert sent[0]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "Screenshot", "arguments": "{}"}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "screenshot taken"}
    assert sent[3]["role"] == "user" and {"type": "image_url", "image_url": {"url": "https://x/y.png"}} in sent[3]["content"]
    assert sent[4] == {"role": "system", "content": "The user switched to plan mode."}
    assert sent[5] == {"role": "user", "content": "and now?"}


async def test_thinking_becomes_reasoning_effort_and_earlier_thinking_is_dropped(fake_provider) -> None:
    fp = fake_provider({"gpt-t": {"thinking": "hmm", "text": "done"}})
    history = [Message(role="user", content="q"),
               Message(role="assistant", content=[ThinkingBlock(thinking="old", signature="s"), TextBlock(text="a")]),
               Message(role="user", content="q2")]
    response = await model_for(fp).request(ask(*history, thinking={"type": "enabled", "budget_tokens": 20000}))
    assert isinstance(response.content[0], ThinkingBlock) and response.content[0].thinking == "hmm"
    sent = fp.received[0].body
    assert sent["reasoning_effort"] == "high" and sent["messages"][1] == {"role": "assistant", "content": "a"}
    await model_for(fp).request(ask())
    assert "reasoning_effort" not in fp.received[1].body


def test_stop_reasons_and_reasoning_fields_map_back() -> None:
    def body(finish: str, **message) -> dict:
        return {"id": "c", "choices": [{"message": {"role": "assistant", "content": "x", **message},
                                        "finish_reason": finish}]}

    reasons = {f: from_chat_response(body(f)).stop_reason for f in ("stop", "length", "tool_calls", "content_filter")}
    assert reasons == {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                       "content_filter": "refusal"}
    assert from_chat_response(body("stop", reasoning="openrouter style")).content[0].thinking == "openrouter style"
    broken = body("tool_calls", tool_calls=[{"id": "c1", "function": {"name": "Bash", "arguments": "{not json"}}])
    assert from_chat_response(broken).tool_uses()[0].input == {"_raw": "{not json"}


def test_tool_choice_and_openai_max_tokens_field() -> None:
    request = ask(tools=[READ], tool_choice={"type": "tool", "name": "Read", "disable_parallel_tool_use": True},
                  stop_sequences=["END"])
    body = OpenAIModel("gpt-5", api_key="k").chat_body(request)
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Read"}}
    assert body["parallel_tool_calls"] is False and body["stop"] == ["END"]
    assert body["max_completion_tokens"] == 256 and "max_tokens" not in body
    assert to_chat_request(ask(tools=[READ], tool_choice={"type": "any"}), model="m")["tool_choice"] == "required"


def test_gemini_schemas_lose_the_keywords_gemini_rejects() -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
              "properties": {"limit": {"type": "integer", "exclusiveMinimum": 0},
                             "url": {"type": "string", "format": "uri"},
                             "when": {"type": "string", "format": "date-time"},
                             "items": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                                                  "properties": {"properties": {"type": "string"}}}}},
              "required": ["limit"]}
    clean = clean_gemini_schema(schema)
    assert "$schema" not in clean and "additionalProperties" not in clean
    assert clean["properties"]["limit"] == {"type": "integer", "minimum": 1}
    assert clean["properties"]["url"] == {"type": "string"}
    assert clean["properties"]["when"]["format"] == "date-time"
    assert clean["properties"]["items"]["items"] == {"type": "object", "properties": {"properties": {"type": "string"}}}
    gemini = OpenAIModel("gemini-2.5-flash", api_key="k",
                         base_url="https://generativelanguage.googleapis.com/v1beta/openai/", provider="gemini")
    sent = gemini.chat_body(ask(tools=[ToolSpec(name="T", input_schema=schema)]))
    assert sent["tools"][0]["function"]["parameters"] == clean
    other = OpenAIModel("m", api_key="k", base_url="http://127.0.0.1:1/v1", provider="vllm")
    assert other.chat_body(ask(tools=[ToolSpec(name="T", input_schema=schema)]))["tools"][0]["function"][
        "parameters"] == schema


def test_a_pdf_becomes_a_file_part_where_the_backend_takes_files() -> None:
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
           "title": "spec.pdf"}
    request = MessagesRequest.model_validate({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [pdf, {"type": "text", "text": "summarise"}]}]})
    warnings: list[str] = []
    part = to_chat_request(request, model="m", files=True, warnings=warnings)["messages"][0]["content"][0]
    assert part == {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBE"}}
    assert warnings == []
    assert OpenAIModel("gpt-5", api_key="k").files and not OpenAIModel("q", base_url="http://127.0.0.1:1/v1").files
    to_chat_request(request, model="m", warnings=warnings)
    assert warnings == ["document blocks (1)"]


async def test_interleaved_tool_calls_stream_block_by_block_through_the_sdk_adapter(fake_provider) -> None:
    calls = [{"name": "Read", "input": {"file_path": "/a"}}, {"name": "Grep", "input": {"pattern": "x"}}]
    fp = fake_provider({"gpt-t": {"tool_uses": calls, "interleave": True}})
    events, final = await collect(model_for(fp), ask())
    starts = [e.index for e in events if isinstance(e, ContentBlockStart)]
    deltas = [e.index for e in events if isinstance(e, ContentBlockDelta)]
    assert starts == [0, 1] and deltas == sorted(deltas)
    assert [(b.name, b.input) for b in final.content] == [(c["name"], c["input"]) for c in calls]
