"""The whole Messages request shape through the gateway, strict validation, block order and our own ids."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import gateway

OAI = 'default = "fakeoai:gpt-test"\n'
ANTH = 'default = "fakeanth:claude-up"\n'
PDF = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"

HISTORY = [  # every block type Claude Code's WebSearch, ToolSearch and file tools put in a conversation
    {"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The sky is green."},
         "title": "notes.txt", "citations": {"enabled": True}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "search_result", "source": "https://example.com/a", "title": "Result A",
         "content": [{"type": "text", "text": "A says hello."}], "citations": {"enabled": True}},
        {"type": "container_upload", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"},
        {"type": "text", "text": "What colour is the sky?"}]},
    {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "sky colour"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
            {"type": "web_search_result", "url": "https://example.com", "title": "Sky", "encrypted_content": "Eq0K",
             "page_age": None}]},
        {"type": "tool_use", "id": "toolu_01", "name": "ToolSearch", "input": {"query": "grep"}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": [
            {"type": "tool_reference", "tool_name": "Grep"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Grep: search"}}]},
        {"type": "text", "text": "go on"}]},
]


def test_every_block_type_reaches_an_anthropic_backend_verbatim(tmp_path) -> None:
    body = {"model": "m", "max_tokens": 50, "messages": HISTORY, "some_new_field": {"x": [1, None]}}
    with FakeProvider({"claude-up": {"text": "green"}}) as fp, gateway(tmp_path, fp.url, ANTH) as gw:
        for stream in (False, True):
            r = httpx.post(gw.url + "/v1/messages", json={**body, "stream": stream}, timeout=10)
            assert r.status_code == 200, r.text
            sent = fp.received[-1].body
            assert sent == {**body, "model": "claude-up", "stream": stream}
            assert "x-flotilla-warning" not in r.headers


def test_every_block_type_is_translated_or_dropped_with_a_warning_for_openai(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "green"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        raw = gw.client().messages.with_raw_response.create(model="m", max_tokens=50, messages=HISTORY)
        assert raw.parse().content[0].text == "green"
        warning = raw.headers["x-flotilla-warning"]
        for kind in ("server_tool_use", "web_search_tool_result", "container_upload", "tool_reference",
                     "document"):  # the PDF: this backend takes no files
            assert kind in warning, kind
        messages = fp.received[-1].body["messages"]
        first = messages[0]["content"]
        assert "notes.txt\n\nThe sky is green." in first and "Result A (https://example.com/a)\nA says hello." in first
        tool = [m for m in messages if m["role"] == "tool"][0]
        assert tool["tool_call_id"] == "toolu_01" and tool["content"] == "Grep: search"
        with gw.client().messages.stream(model="m", max_tokens=50, messages=HISTORY) as s:
            assert "".join(s.text_stream) == "green"
            assert "server_tool_use" in s.response.headers["x-flotilla-warning"]


def test_lost_in_translation_user_top_k_and_stop_sequences(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        raw = gw.client().messages.with_raw_response.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 40},
            metadata={"user_id": "user-42"}, stop_sequences=["a", "b", "c", "d", "e", "f"])
        sent = fp.received[-1].body
        assert sent["user"] == "user-42" and sent["stop"] == ["a", "b", "c", "d"] and "top_k" not in sent
        warning = raw.headers["x-flotilla-warning"]
        assert "top_k" in warning and "stop_sequences" in warning and "6 sent" in warning


BAD = [
    ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens: Field required"),
    ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ({"max_tokens": -5}, "max_tokens: Input should be greater than or equal to 1"),
    ({"max_tokens": "12"}, "max_tokens: Input should be a valid integer"),
    ({"max_tokens": 1.5}, "max_tokens: Input should be a valid integer"),
    ({"messages": []}, "messages: at least one message is required"),
    ({"temperature": 5}, "temperature: Input should be between 0 and 1"),
    ({"top_p": -0.1}, "top_p"),
    ({"top_k": "x"}, "top_k"),
    ({"stream": "yes"}, "stream: Input should be a valid boolean"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages.0.content.0.type"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "max_tokens: must be greater than"),
    ({"model": ""}, "model"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0.text: Field required"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "image"}]}]}]}, "messages.0.content.0.content.0.source: Field required"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m for _, m in BAD])
def test_validation_as_strict_as_the_api(tmp_path, change, message) -> None:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **change}
    if "messages" in change and "max_tokens" not in change and change["messages"] and message.startswith("max"):
        del body["max_tokens"]
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        r = httpx.post(gw.url + "/v1/messages", json=body, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert message in r.json()["error"]["message"]
        assert fp.count() == 0


def _events(text: str) -> list[dict]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


@pytest.mark.parametrize("path", ["", "fast_path = false\n"])
def test_interleaved_parallel_tool_calls_come_out_block_by_block(tmp_path, path) -> None:
    calls = [{"name": "Read", "input": {"file_path": "/a/first.py", "limit": 10}, "id": "call_a"},
             {"name": "Grep", "input": {"pattern": "def main", "path": "/b"}, "id": "call_b"}]
    step = {"text": "reading both", "tool_uses": calls, "interleave": True}
    with FakeProvider({"gpt-test": step}) as fp, gateway(tmp_path, fp.url, OAI + path) as gw:
        body = {"model": "m", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "go"}]}
        events = _events(httpx.post(gw.url + "/v1/messages", json=body, timeout=10).text)
        order = [(e["type"], e.get("index")) for e in events if e["type"].startswith("content_block")]
        current, seen = None, []
        for kind, index in order:  # each block whole: start, its deltas, stop; then the next
            if kind == "content_block_start":
                assert current is None and index == len(seen)
                current = index
                seen.append(index)
            else:
                assert index == current, order
                if kind == "content_block_stop":
                    current = None
        assert seen == [0, 1, 2]
        with gw.client().messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as s:
            final = s.get_final_message()
        assert [(b.name, b.input) for b in final.content[1:]] == [(c["name"], c["input"]) for c in calls]


@pytest.mark.parametrize("backend,upstream_id", [(OAI, "chatcmpl-same"), (ANTH, "msg_same")])
def test_our_own_message_ids_even_when_the_backend_repeats_its_own(tmp_path, backend, upstream_id) -> None:
    model = "gpt-test" if backend == OAI else "claude-up"
    with FakeProvider({model: {"text": "hi", "id": "msg_same"}}) as fp, gateway(tmp_path, fp.url, backend) as gw:
        c = gw.client()
        ids = [c.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]).id
               for _ in range(2)]
        for _ in range(2):
            with c.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as s:
                ids.append(s.get_final_message().id)
        assert len(set(ids)) == 4 and all(i.startswith("msg_") and "same" not in i for i in ids)


def test_sdk_round_trip_of_a_tool_result_holding_a_document(tmp_path) -> None:
    with FakeProvider({"claude-up": {"text": "done"}}) as fp, gateway(tmp_path, fp.url, ANTH) as gw:
        msg = gw.client().messages.create(model="m", max_tokens=5, messages=HISTORY)
        assert msg.content[0].text == "done"
        with pytest.raises(anthropic.BadRequestError, match="messages: at least one message"):
            gw.client().messages.create(model="m", max_tokens=5, messages=[])
