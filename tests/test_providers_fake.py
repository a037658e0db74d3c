"""The fake provider speaks both wire formats as the official SDKs expect them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from flotilla.testing.fake_provider import FakeProvider, load_script

ASK = {"max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}


def sse_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        out.append((lines.get("event", ""), json.loads(lines["data"]) if lines["data"] != "[DONE]" else None))
    return out


def test_anthropic_stream_has_every_event_in_order(fake_provider) -> None:
    fp = fake_provider({"m": [{"thinking": "let me see", "text": "the answer",
                               "tool_uses": [{"name": "Read", "input": {"file_path": "/a/b.py", "limit": 20}}]}]})
    r = httpx.post(fp.url + "/v1/messages?beta=true", json={"model": "m", "stream": True, **ASK})
    assert r.headers["content-type"].startswith("text/event-stream") and r.headers["request-id"]
    events = sse_events(r.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"} <= set(deltas)
    json_parts = [d["delta"]["partial_json"] for n, d in events
                  if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert len(json_parts) > 1 and json.loads("".join(json_parts)) == {"file_path": "/a/b.py", "limit": 20}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use" and final["usage"]["output_tokens"] > 0
    assert fp.received[0].query == "beta=true"


def test_the_official_sdks_read_its_answers(fake_provider) -> None:
    fp = fake_provider({"claude-x": [{"text": "hi from claude", "cache_read": 7, "cache_write": 3}],
                        "gpt-x": [{"text": "hi from gpt", "cache_read": 5}]})
    message = anthropic.Anthropic(base_url=fp.url, api_key="k", max_retries=0).messages.create(
        model="claude-x", **ASK)
    assert message.content[0].text == "hi from claude"
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (7, 3)
    completion = openai.OpenAI(base_url=fp.url + "/v1", api_key="k", max_retries=0).chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hello"}])
    assert completion.choices[0].message.content == "hi from gpt"
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert (fp.count("claude-x"), fp.count("gpt-x"), fp.count()) == (1, 1, 2)


def test_openai_stream_splits_tool_arguments_and_ends_with_usage_and_done(fake_provider) -> None:
    fp = fake_provider({"gpt-x": {"tool_uses": [{"name": "Bash", "input": {"command": "ls -la /tmp"}}]}})
    body = {"model": "gpt-x", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "list"}]}
    events = sse_events(httpx.post(fp.url + "/v1/chat/completions", json=body).text)
    assert events[-1] == ("", None)  # data: [DONE]
    chunks = [data for _, data in events[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    arguments = [tc["function"]["arguments"] for c in chunks for ch in c["choices"]
                 for tc in ch["delta"].get("tool_calls", []) if tc["function"].get("arguments")]
    assert len(arguments) > 1 and json.loads("".join(arguments)) == {"command": "ls -la /tmp"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    # a single dict step answers every request
    httpx.post(fp.url + "/v1/chat/completions", json={**body, "stream": False})
    assert fp.count("gpt-x") == 2


def test_unknown_model_and_exhausted_script_and_bad_key(fake_provider) -> None:
    fp = fake_provider({"m": [{"text": "once"}]}, api_key="right")
    headers = {"x-api-key": "right"}
    r = httpx.post(fp.url + "/v1/messages", json={"model": "other", **ASK}, headers=headers)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert r.json()["type"] == "error" and r.headers["request-id"]
    assert httpx.post(fp.url + "/v1/messages", json={"model": "m", **ASK}, headers=headers).status_code == 200
    r = httpx.post(fp.url + "/v1/messages", json={"model": "m", **ASK}, headers=headers)
    assert r.status_code == 400 and "all were used" in r.json()["error"]["message"]
    r = httpx.post(fp.url + "/v1/chat/completions", json={"model": "m", "messages": []},
                   headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert fp.received[-1].headers["authorization"] == "Bearer wrong"


def test_count_tokens_does_not_use_a_step(fake_provider) -> None:
    fp = fake_provider({"m": [{"text": "x"}]})
    client = anthropic.Anthropic(base_url=fp.url, api_key="k", max_retries=0)
    assert client.messages.count_tokens(model="m", messages=ASK["messages"]).input_tokens > 0
    assert fp.count("m") == 0
    assert client.messages.create(model="m", **ASK).content[0].text == "x"


def test_a_step_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match="txet"):
        FakeProvider({"m": [{"txet": "typo"}]})


def test_scripts_load_from_yaml_and_json(tmp_path) -> None:
    (tmp_path / "s.yaml").write_text("m:\n  - text: hi\n  - status: 529\n")
    (tmp_path / "s.json").write_text('{"m": [{"text": "hi"}]}')
    assert load_script(tmp_path / "s.yaml") == {"m": [{"text": "hi"}, {"status": 529}]}
    assert load_script(tmp_path / "s.json") == {"m": [{"text": "hi"}]}


def test_the_command_serves_a_script_file(tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "s.json").write_text('{"m": {"text": "served"}}')
    proc = subprocess.Popen([str(Path(sys.executable).parent / "flotilla"), "fake-provider", "--port", str(port),
                             "--script", str(tmp_path / "s.json")], stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/messages", json={"model": "m", **ASK})
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r.json()["content"][0]["text"] == "served"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_echo_steps_and_callable_steps(fake_provider) -> None:
    seen = []

    def answer(body: dict) -> dict:
        seen.append(body["model"])
        return {"text": f"{len(body['messages'])} messages"}

    fp = fake_provider({"echo": {"echo": True}, "fn": [answer]})
    client = anthropic.Anthropic(base_url=fp.url, api_key="k", max_retries=0)
    assert client.messages.create(model="echo", max_tokens=9, messages=[
        {"role": "user", "content": [{"type": "text", "text": "say this back"}]}]).content[0].text == "say this back"
    assert client.messages.create(model="fn", **ASK).content[0].text == "1 messages" and seen == ["fn"]


def test_mounted_providers_keep_apart(fake_provider) -> None:
    one, two = fake_provider({"m": {"text": "one"}}), fake_provider({"m": {"text": "two"}})
    assert one.url != two.url
    texts = [httpx.post(fp.url + "/v1/messages", json={"model": "m", **ASK}).json()["content"][0]["text"]
             for fp in (one, two, two)]
    assert texts == ["one", "two", "two"] and (one.count("m"), two.count("m")) == (1, 2)


def test_models_are_listed_in_both_formats(fake_provider) -> None:
    fp = fake_provider({"b-model": {"text": "x"}, "a-model": [{"text": "y"}]})
    listed = anthropic.Anthropic(base_url=fp.url, api_key="k", max_retries=0).models.list()
    assert [m.id for m in listed.data] == ["a-model", "b-model"]
    assert [m.id for m in openai.OpenAI(base_url=fp.url + "/v1", api_key="k", max_retries=0).models.list()] == [
        "a-model", "b-model"]
