"""The official anthropic SDK through the gateway to the fake provider, in both wire formats."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import fixture_request, gateway

OAI = 'default = "fakeoai:gpt-test"\n'
SDK = "fast_path = false\n"  # the OpenAI SDK adapter instead of the gateway's own HTTP client
ANTH = 'default = "fakeanth:claude-up"\n'


@pytest.mark.parametrize("path", ["", SDK])
def test_plain_to_openai_backend(tmp_path, path) -> None:
    with FakeProvider({"gpt-test": {"text": "hello from openai", "input_tokens": 11, "output_tokens": 4}}) as fp, \
            gateway(tmp_path, fp.url, OAI + path) as gw:
        raw = gw.client().messages.with_raw_response.create(
            model="claude-sonnet-5-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
        msg = raw.parse()
        assert msg.content[0].text == "hello from openai"
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (11, 4)
        assert raw.headers["x-flotilla-route"] == "default; model=fakeoai:gpt-test"
        assert float(raw.headers["x-flotilla-overhead-ms"]) >= 0
        assert raw.headers["request-id"].startswith("req_")
        sent = fp.received[-1]
        assert sent.path == "/v1/chat/completions" and sent.body["model"] == "gpt-test"
        row = gw.rows()[-1]
        assert (row["route"], row["model"], row["status"], row["input_tokens"]) == (
            "default", "fakeoai:gpt-test", 200, 11)


@pytest.mark.parametrize("path", ["", SDK])
def test_streamed_to_openai_backend(tmp_path, path) -> None:
    with FakeProvider({"gpt-test": {"text": "one two three four"}}) as fp, \
            gateway(tmp_path, fp.url, OAI + path) as gw:
        with gw.client().messages.stream(model="claude-sonnet-5-5", max_tokens=50,
                                         messages=[{"role": "user", "content": "hi"}]) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == "one two three four"
        assert final.stop_reason == "end_turn"
        assert fp.received[-1].body["stream"] is True
        row = gw.rows()[-1]
        assert row["ttft_ms"] is not None and row["stream"] == 1
        assert (row["input_tokens"], row["output_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)
        assert row["output_tokens"] > 0


@pytest.mark.parametrize("backend", [OAI, OAI + SDK, ANTH, ANTH + SDK])
def test_tool_round_trip_streamed(tmp_path, backend) -> None:
    upstream = "gpt-test" if backend.startswith(OAI) else "claude-up"
    script = {upstream: [{"text": "let me read it", "tool_use": {"name": "Read", "input": {"file_path": "/etc/hosts"},
                                                                 "id": "call_1"}},
                         {"text": "the file says localhost"}]}
    tools = [{"name": "Read", "description": "read a file",
              "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}]
    with FakeProvider(script) as fp, gateway(tmp_path, fp.url, backend) as gw:
        client = gw.client()
        messages = [{"role": "user", "content": "read /etc/hosts"}]
        with client.messages.stream(model="claude-opus-5-5", max_tokens=100, tools=tools,
                                    messages=messages) as s:
            first = s.get_final_message()
        use = first.content[-1]
        assert first.content[0].text == "let me read it"  # text deltas, then the tool call, in order
        assert (first.stop_reason, use.type, use.name, use.input) == ("tool_use", "tool_use", "Read",
                                                                      {"file_path": "/etc/hosts"})
        messages += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                   "content": "127.0.0.1 localhost"}]}]
        second = client.messages.create(model="claude-opus-5-5", max_tokens=100, tools=tools, messages=messages)
        assert second.content[0].text == "the file says localhost"
        body = fp.received[-1].body
        if backend.startswith(OAI):
            tool_msg = [m for m in body["messages"] if m["role"] == "tool"][0]
            assert tool_msg["tool_call_id"] == use.id and "localhost" in tool_msg["content"]
        else:
            assert body["messages"][-1]["content"][0]["type"] == "tool_result"


def test_claude_code_first_request_translated_for_openai(tmp_path) -> None:
    fx = fixture_request()
    with FakeProvider({"gpt-test": {"text": "hi"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        headers = {k: v for k, v in fx["headers"].items() if k.lower() not in ("connection", "accept-encoding")}
        with httpx.stream("POST", gw.url + fx["path"], headers=headers, content=json.dumps(fx["body"]),
                          timeout=10) as resp:
            assert resp.status_code == 200, resp.read()
            text = resp.read().decode()
        assert "event: message_start" in text and "event: message_stop" in text and "text_delta" in text
        body = fp.received[-1].body
        assert body["model"] == "gpt-test" and body["stream"] is True
        roles = [m["role"] for m in body["messages"]]
        assert roles[0] == "system" and "system" in roles[1:]  # the mid-conversation system message kept
        assert "claude agent" in body["messages"][0]["content"].lower()
        assert "cache_control" not in json.dumps(body)
        names = {t["function"]["name"] for t in body["tools"]}
        assert {"Bash", "Read", "Edit", "Write"} <= names
        for key in ("context_management", "output_config", "thinking", "metadata", "anthropic-beta"):
            assert key not in body
        assert body["max_tokens"] == 128000


@pytest.mark.parametrize("path", ["", SDK])
def test_claude_code_first_request_passed_on_to_anthropic_with_its_headers(tmp_path, path) -> None:
    fx = fixture_request()
    with FakeProvider({"claude-up": {"text": "hi"}}) as fp, gateway(tmp_path, fp.url, ANTH + path) as gw:
        headers = {k: v for k, v in fx["headers"].items() if k.lower() not in ("connection", "accept-encoding")}
        resp = httpx.post(gw.url + fx["path"], headers=headers, content=json.dumps(fx["body"]), timeout=10)
        assert resp.status_code == 200 and "event: message_stop" in resp.text
        got = fp.received[-1]
        assert got.headers["anthropic-beta"] == fx["headers"]["anthropic-beta"]
        assert got.headers["anthropic-version"] == "2023-06-01"
        for key in ("context_management", "output_config", "thinking", "metadata", "system", "tools"):
            assert got.body[key] == fx["body"][key], key
        assert got.body["model"] == "claude-up"
        assert [m["role"] for m in got.body["messages"]] == [m["role"] for m in fx["body"]["messages"]]


def test_count_tokens_anthropic_backend_asks_upstream_others_estimate(tmp_path) -> None:
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, 'aliases = {oai = "fakeoai:gpt-test"}\n' + ANTH) as gw:
        c = gw.client()
        raw = c.messages.with_raw_response.count_tokens(model="claude-x", messages=[{"role": "user", "content": "hello"}])
        assert raw.parse().input_tokens >= 1 and "x-flotilla-token-count" not in raw.headers
        assert fp.received[-1].path == "/v1/messages/count_tokens"
        raw = c.messages.with_raw_response.count_tokens(model="oai", messages=[{"role": "user", "content": "hello"}])
        assert raw.headers["x-flotilla-token-count"] == "local-estimate"
        assert json.loads(raw.http_response.text)["estimated"] is True


def test_probes_models_health_and_metrics(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "x"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        assert httpx.head(gw.url + "/").status_code == 200
        assert httpx.get(gw.url + "/").status_code == 200
        assert httpx.get(gw.url + "/health").json()["status"] == "ok"
        ids = [m.id for m in gw.client().models.list()]
        assert "sonnet" in ids
        gw.client().messages.create(model="haiku", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        metrics = httpx.get(gw.url + "/metrics").text
        assert 'flotilla_gateway_requests_total{key="anonymous",model="fakeoai:gpt-test",route="default",status="200"} 1' in metrics
        assert "flotilla_gateway_request_seconds_bucket" in metrics
        assert 'flotilla_gateway_tokens_total{key="anonymous",model="fakeoai:gpt-test",route="default",kind="output"}' in metrics


def test_error_shapes(tmp_path) -> None:
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, OAI + "max_body_mb = 1\n") as gw:
        r = httpx.post(gw.url + "/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        assert r.json()["request_id"] == r.headers["request-id"] and "x-flotilla-route" in r.headers
        big = json.dumps({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x" * 1_200_000}]})
        r = httpx.post(gw.url + "/v1/messages", content=big)
        assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
        r = httpx.post(gw.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": "nope"})
        assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
        r = httpx.get(gw.url + "/v2/other")
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
        with pytest.raises(anthropic.NotFoundError):  # the upstream has no such model
            gw.client().messages.create(model="x", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert [r["status"] for r in gw.rows(4)] == [400, 413, 400, 404]  # refused requests are logged too


def test_upstream_errors_map_to_anthropic_statuses(tmp_path) -> None:
    script = {"gpt-test": [{"status": 429, "retry_after": 7}, {"status": 400, "message": "bad thing"},
                           {"delay": 2}]}
    with FakeProvider(script) as fp, gateway(tmp_path, fp.url, OAI + "timeout_s = 0.3\n") as gw:
        c = gw.client()
        kw = dict(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.RateLimitError) as info:
            c.messages.create(**kw)
        assert info.value.response.headers["retry-after"] == "7"
        assert info.value.response.headers["x-flotilla-route"] == "default; model=fakeoai:gpt-test"
        with pytest.raises(anthropic.BadRequestError, match="bad thing"):
            c.messages.create(**kw)
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(**kw)
        assert info.value.status_code == 504 and info.value.body["error"]["type"] == "timeout_error"


def test_fallback_before_the_first_byte(tmp_path) -> None:
    script = {"gpt-test": {"status": 529}, "claude-up": {"text": "from the fallback"}}
    chain = 'default = ["fakeoai:gpt-test", "fakeanth:claude-up"]\n'
    with FakeProvider(script) as fp, gateway(tmp_path, fp.url, chain) as gw:
        raw = gw.client().messages.with_raw_response.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert raw.parse().content[0].text == "from the fallback"
        assert raw.headers["x-flotilla-route"] == "default; model=fakeanth:claude-up"
        with gw.client().messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as s:
            assert "".join(s.text_stream) == "from the fallback"
        assert fp.count("gpt-test") == 2 and fp.count("claude-up") == 2
        assert 'flotilla_gateway_fallbacks_total{from="fakeoai:gpt-test",to="fakeanth:claude-up"} 2' in \
            httpx.get(gw.url + "/metrics").text


@pytest.mark.parametrize("primary", ["fakeoai:gpt-test", "fakeanth:claude-cut"])
@pytest.mark.parametrize("path", ["", SDK])
def test_after_the_first_byte_an_sse_overloaded_error_and_no_fallback(tmp_path, primary, path) -> None:
    cut = {"text": "a b c d e f g h", "cut_after": 3}
    script = {"gpt-test": cut, "claude-cut": cut, "claude-up": {"text": "never"}}
    chain = f'default = ["{primary}", "fakeanth:claude-up"]\n' + path
    with FakeProvider(script) as fp, gateway(tmp_path, fp.url, chain) as gw:
        with pytest.raises(anthropic.APIStatusError) as info:
            with gw.client().messages.stream(model="m", max_tokens=5,
                                             messages=[{"role": "user", "content": "x"}]) as s:
                for _ in s.text_stream:
                    pass
        assert "overloaded_error" in str(info.value.body) or "Overloaded" in str(info.value)
        assert fp.count("claude-up") == 0
        assert gw.rows(1)[-1]["status"] == 529


def test_a_client_that_leaves_mid_stream_stops_the_upstream_read(tmp_path) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    with FakeProvider({"gpt-test": {"text": words, "event_delay": 0.4}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        body = {"model": "m", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream("POST", gw.url + "/v1/messages", json=body, timeout=10) as resp:
            next(resp.iter_bytes())
        row = gw.rows(1)[-1]
        assert (row["status"], row["error"]) == (499, "client_disconnected")
        assert row["latency_ms"] < 1500  # the whole stream (8 events, 0.4 s apart) takes over 3 s


def test_fixture_to_gemini_gets_cleaned_tool_schemas(tmp_path) -> None:
    fx = fixture_request()
    with FakeProvider({"gemini-test": {"text": "hi"}}) as fp, \
            gateway(tmp_path, fp.url, 'default = "gemini:gemini-test"\n', environ={"GEMINI_API_KEY": "g-key"},
                    providers=f'[providers.gemini]\nbase_url = "{fp.url}/v1"\n') as gw:
        r = httpx.post(gw.url + "/v1/messages", json={**fx["body"], "stream": False}, timeout=10)
        assert r.status_code == 200, r.text
        body = fp.received[-1].body
        schemas = json.dumps([t["function"]["parameters"] for t in body["tools"]])
        assert "$schema" not in schemas and "additionalProperties" not in schemas
        assert fp.received[-1].headers["authorization"] == "Bearer g-key"


def test_images_and_mid_conversation_system_reach_an_openai_backend(tmp_path) -> None:
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    with FakeProvider({"gpt-test": {"text": "a dot"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        gw.client().messages.create(model="m", max_tokens=20, system=[{"type": "text", "text": "be brief",
                                                                      "cache_control": {"type": "ephemeral"}}],
                                    messages=[{"role": "user", "content": [
                                        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                     "data": pixel}},
                                        {"type": "text", "text": "what is this?"}]}])
        body = fp.received[-1].body
        parts = body["messages"][1]["content"]
        assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
        assert "cache_control" not in json.dumps(body)
