"""The canonical message model round-trips the Anthropic wire shapes."""

import json
from pathlib import Path

from flotilla.messages import (
    MessagesRequest,
    MessagesResponse,
    StreamAccumulator,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    estimate_tokens,
    response_to_events,
    stream_event_adapter,
)

FIXTURE = Path(__file__).parent / "fixtures" / "claude-code-2.1.328-request.json"


def test_claude_code_request_parses_and_keeps_unknown_fields():
    body = json.loads(FIXTURE.read_text())["body"]
    request = MessagesRequest.model_validate(body)
    assert request.model == body["model"]
    assert [m.role for m in request.messages] == [m["role"] for m in body["messages"]]
    assert request.thinking_enabled()
    wire = request.wire()
    # Fields flotilla does not model travel on untouched.
    assert wire["context_management"] == body["context_management"]
    assert wire["output_config"] == body["output_config"]
    assert wire["system"][1]["cache_control"] == {"type": "ephemeral"}
    assert len(wire["tools"]) == len(body["tools"])


def test_content_blocks_are_discriminated_by_type():
    response = MessagesResponse.model_validate({
        "id": "m", "model": "x", "stop_reason": "tool_use",
        "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "text", "text": "hi"},
                    {"type": "tool_use", "id": "tu", "name": "Read", "input": {"file_path": "a"}}],
    })
    assert [type(b) for b in response.content] == [ThinkingBlock, TextBlock, ToolUseBlock]
    assert response.tool_uses()[0].input == {"file_path": "a"}
    result = ToolResultBlock(tool_use_id="tu", content=[TextBlock(text="a"), TextBlock(text="b")])
    assert result.text() == "ab"


def test_stream_events_fold_back_into_the_response():
    response = MessagesResponse(
        id="m1", model="x", stop_reason="tool_use",
        content=[ThinkingBlock(thinking="plan", signature="sig"), TextBlock(text="Let me look."),
                 ToolUseBlock(id="t1", name="Grep", input={"pattern": "def f", "path": "."})],
        usage=Usage(input_tokens=10, output_tokens=7, cache_read_input_tokens=3),
    )
    accumulator = StreamAccumulator()
    for event in response_to_events(response):
        # Every event survives its own wire form.
        accumulator.add(stream_event_adapter.validate_python(event.wire()))
    assert accumulator.result() == response


def test_usage_adds_and_estimate_grows_with_input():
    total = Usage(input_tokens=1, cache_read_input_tokens=2) + Usage(output_tokens=3, cache_creation_input_tokens=4)
    assert total.total_tokens == 10
    small = MessagesRequest(model="x", messages=[{"role": "user", "content": "hi"}])
    large = MessagesRequest(model="x", messages=[{"role": "user", "content": "hi " * 1000}])
    assert estimate_tokens(large) > estimate_tokens(small) * 100


def test_every_block_type_of_the_api_is_accepted_and_unknown_ones_kept_verbatim():
    from flotilla.messages import DocumentBlock, OtherBlock, SearchResultBlock

    blocks = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hi"}, "title": "t"},
        {"type": "search_result", "source": "https://x", "title": "X", "content": [{"type": "text", "text": "r"}]},
        {"type": "container_upload", "file_id": "file_1"},
        {"type": "some_future_block", "payload": {"deep": [1, 2]}},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "tool_reference", "tool_name": "Grep"},
            {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "doc"}]}}]},
    ]
    wire = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": blocks},
        {"role": "assistant", "content": [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                                           "input": {"query": "q"}}]}]}
    request = MessagesRequest.model_validate(wire)
    kinds = [type(b) for b in request.messages[0].content]
    assert kinds == [DocumentBlock, SearchResultBlock, OtherBlock, OtherBlock, ToolResultBlock]
    assert request.messages[0].content[0].plain_text() == "hi"
    assert request.messages[0].content[4].content[1].plain_text() == "doc"
    assert request.model_dump(mode="json", exclude_none=True) == wire
    # What the agent loop builds still works as before.
    result = ToolResultBlock(tool_use_id="t", content=[TextBlock(text="a"), TextBlock(text="b")])
    assert result.text() == "ab"
