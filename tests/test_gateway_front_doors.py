"""The gateway's other front doors, over loopback with the official ``openai`` SDK (Chat Completions,
Responses) and plain HTTP (Gemini): each translated to Messages and back, plain and streamed, with tool
calls both ways, keyed, budgeted and logged as ``/v1/messages`` is; and the requests Codex CLI 0.171.0
and Gemini CLI 0.61.0 really sent (captured once into tests/fixtures/) served whole."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import openai
import pytest

from flotilla.gateway.front_gemini import to_messages as gemini_to_messages
from flotilla.gateway.front_responses import to_messages as responses_to_messages
from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import gateway

FIXTURES = Path(__file__).parent / "fixtures"
TOOL = {"name": "Bash", "input": {"command": "ls"}}
PRICED = ('\n[models."fakeanth:claude-x"]\ninput = 1.0\noutput = 10.0\n'
          '[models."fakeoai:gpt-x"]\ninput = 1.0\noutput = 10.0\n')
SCRIPT = {"claude-x": [{"text": "hello there"}, {"tool_use": TOOL}] * 4,
          "gpt-x": [{"text": "hello there"}, {"tool_use": TOOL}] * 4}


def served(tmp_path: Path, fp: FakeProvider, backend: str, **kw):
    return gateway(tmp_path, fp.url, f'default = "{backend}"\n', keys={"k": {"budget_usd": 5.0}}, extra=PRICED, **kw)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("backend", ["fakeanth:claude-x", "fakeoai:gpt-x"])
def test_chat_completions_in_plain_and_streamed_with_tool_calls(tmp_path, backend) -> None:
    with FakeProvider(SCRIPT) as fp, served(tmp_path, fp, backend) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.secrets["k"], max_retries=0)
        tools = [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        plain = client.chat.completions.create(model="whatever", messages=messages, tools=tools)
        assert plain.choices[0].message.content == "hello there" and plain.choices[0].finish_reason == "stop"
        assert plain.usage.prompt_tokens > 0 and plain.usage.completion_tokens > 0
        called = client.chat.completions.create(model="whatever", messages=messages, tools=tools)
        call = called.choices[0].message.tool_calls[0]
        assert (call.function.name, json.loads(call.function.arguments)) == ("Bash", {"command": "ls"})
        assert called.choices[0].finish_reason == "tool_calls"
        # the call's result goes back, and the answer streams
        history = messages + [called.choices[0].message.model_dump(exclude_none=True),
                              {"role": "tool", "tool_call_id": call.id, "content": "a.txt"}]
        chunks = list(client.chat.completions.create(model="whatever", messages=history, tools=tools, stream=True,
                                                     stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello there"
        assert chunks[-1].usage.completion_tokens > 0
        streamed = list(client.chat.completions.create(model="whatever", messages=messages, tools=tools, stream=True))
        deltas = [t for c in streamed if c.choices for t in c.choices[0].delta.tool_calls or []]
        assert deltas[0].function.name == "Bash"
        assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"command": "ls"}
        last = fp.received[-2].body  # the tool result, as the backend got it
        assert "a.txt" in json.dumps(last)
        rows = gw.rows(4)
        assert [r["status"] for r in rows] == [200] * 4 and all(r["key_name"] == "k" for r in rows)
        assert all(r["cost_usd"] > 0 for r in rows)
        assert gw.app.keys.spent(gw.app.keys.verify(gw.secrets["k"]))[0] > 0


@pytest.mark.parametrize("backend", ["fakeanth:claude-x", "fakeoai:gpt-x"])
def test_responses_in_plain_and_streamed_with_function_calls(tmp_path, backend) -> None:
    with FakeProvider(SCRIPT) as fp, served(tmp_path, fp, backend) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.secrets["k"], max_retries=0)
        tools = [{"type": "function", "name": "Bash", "parameters": {"type": "object"}, "strict": False}]
        plain = client.responses.create(model="m", instructions="be brief", input="hi", tools=tools)
        assert plain.output_text == "hello there" and plain.usage.output_tokens > 0
        called = client.responses.create(model="m", input="hi", tools=tools)
        call = called.output[0]
        assert call.type == "function_call" and json.loads(call.arguments) == {"command": "ls"}
        history = [{"role": "user", "content": "hi"}, call.model_dump(exclude_none=True),
                   {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt"}]
        events = list(client.responses.create(model="m", input=history, tools=tools, stream=True))
        kinds = [e.type for e in events]
        assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "hello there"
        assert events[-1].response.output[0].content[0].text == "hello there"
        assert events[-1].response.usage.input_tokens > 0
        assert "a.txt" in json.dumps(fp.received[-1].body)
        streamed = list(client.responses.create(model="m", input="hi", tools=tools, stream=True))
        args = "".join(e.delta for e in streamed if e.type == "response.function_call_arguments.delta")
        assert json.loads(args) == {"command": "ls"}
        done = [e.item for e in streamed if e.type == "response.output_item.done"]
        assert done[0].type == "function_call" and done[0].name == "Bash"
        assert [r["status"] for r in gw.rows(4)] == [200] * 4


def gemini(gw, body: dict, *, stream: bool, sse: bool = True, key: str | None = None) -> httpx.Response:
    verb = "streamGenerateContent" if stream else "generateContent"
    query = "?alt=sse" if stream and sse else ""
    return httpx.post(f"{gw.url}/v1beta/models/gemini-x:{verb}{query}", json=body, timeout=30,
                      headers={"x-goog-api-key": key or gw.secrets["k"]})


def sse_data(text: str) -> list[dict]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


@pytest.mark.parametrize("backend", ["fakeanth:claude-x", "fakeoai:gpt-x"])
def test_gemini_generate_content_plain_and_streamed_with_function_calls(tmp_path, backend) -> None:
    tools = [{"functionDeclarations": [{"name": "Bash", "parameters": {"type": "OBJECT", "properties": {
        "command": {"type": "STRING"}}}}]}]
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": tools,
            "systemInstruction": {"parts": [{"text": "be brief"}]}}
    with FakeProvider(SCRIPT) as fp, served(tmp_path, fp, backend) as gw:
        plain = gemini(gw, body, stream=False).json()
        assert plain["candidates"][0]["content"]["parts"][0]["text"] == "hello there"
        assert plain["usageMetadata"]["candidatesTokenCount"] > 0
        called = gemini(gw, body, stream=False).json()["candidates"][0]["content"]
        assert called["parts"][0]["functionCall"] == {"name": "Bash", "args": {"command": "ls"}}
        history = {**body, "contents": body["contents"] + [called, {"role": "user", "parts": [
            {"functionResponse": {"name": "Bash", "response": {"output": "a.txt"}}}]}]}
        streamed = gemini(gw, history, stream=True)
        assert streamed.headers["content-type"].startswith("text/event-stream")
        chunks = sse_data(streamed.text)
        assert "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]) == \
            "hello there"
        assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]
        sent = fp.received[-1].body  # the call and its answer, paired by the id the door gave them
        assert "a.txt" in json.dumps(sent)
        array = gemini(gw, body, stream=True, sse=False).json()
        assert array[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "Bash"
        assert [r["status"] for r in gw.rows(4)] == [200] * 4


def test_front_doors_answer_errors_in_their_own_format(tmp_path) -> None:
    with FakeProvider(SCRIPT) as fp, served(tmp_path, fp, "fakeoai:gpt-x") as gw:
        refused = gemini(gw, {"contents": []}, stream=False, key="flt-wrong")
        assert refused.status_code == 401 and refused.json()["error"]["status"] == "UNAUTHENTICATED"
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="flt-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.AuthenticationError):
            client.responses.create(model="m", input="hi")
        bad = httpx.post(gw.url + "/v1/chat/completions", content=b"[1]", headers={"x-api-key": gw.secrets["k"]})
        assert bad.status_code == 400 and "JSON object" in bad.json()["error"]["message"]
        rows = gw.rows(4)
        assert [r["status"] for r in rows] == [401, 401, 401, 400]  # refused requests logged as Messages' are
        assert fp.count() == 0


def test_codex_cli_captured_request_is_served_and_its_tools_kept(tmp_path) -> None:
    captured = fixture("codex-0.171.0-request.json")
    body, custom = responses_to_messages(captured["body"])
    names = [t["name"] for t in body["tools"]]
    assert "exec_command" in names and not custom  # namespace and web_search left out
    assert body["system"].startswith("You are a coding agent running in the Codex CLI")
    assert body["messages"][-1]["content"][-1]["text"] == "- fix the test"
    with FakeProvider({"gpt-x": {"tool_use": {"name": "exec_command", "input": {"cmd": "pytest -q"}}}}) as fp, \
            served(tmp_path, fp, "fakeoai:gpt-x") as gw:
        answer = httpx.post(gw.url + "/v1/responses", json=captured["body"], timeout=30,
                            headers={"authorization": f"Bearer {gw.secrets['k']}"})
        events = sse_data(answer.text)
        assert events[-1]["type"] == "response.completed"
        call = [e["item"] for e in events if e["type"] == "response.output_item.done"][0]
        assert call["type"] == "function_call" and json.loads(call["arguments"]) == {"cmd": "pytest -q"}


def test_gemini_cli_captured_request_is_served(tmp_path) -> None:
    captured = fixture("gemini-cli-0.61.0-request.json")
    body = gemini_to_messages(captured["body"], "gemini-x")
    assert "run_shell_command" in [t["name"] for t in body["tools"]]
    assert body["system"].startswith("You are Gemini CLI")
    assert body["messages"][-1]["role"] == "user"
    with FakeProvider({"gpt-x": {"text": "done"}}) as fp, served(tmp_path, fp, "fakeoai:gpt-x") as gw:
        answer = httpx.post(gw.url + captured["path"], json=captured["body"], timeout=30,
                            headers={"x-goog-api-key": gw.secrets["k"]})
        chunks = sse_data(answer.text)
        assert "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]) == "done"


def test_the_fake_provider_speaks_responses_and_gemini_itself() -> None:
    with FakeProvider({"gpt-x": [{"text": "hi"}, {"tool_use": TOOL}], "gemini-x": {"text": "hello"}}) as fp:
        client = openai.OpenAI(base_url=fp.url + "/v1", api_key="k", max_retries=0)
        assert client.responses.create(model="gpt-x", input="hi").output_text == "hi"
        events = list(client.responses.create(model="gpt-x", input="hi", stream=True,
                                              tools=[{"type": "function", "name": "Bash", "parameters": {}}]))
        assert events[-1].response.output[0].name == "Bash"
        answer = httpx.post(fp.url + "/v1beta/models/gemini-x:streamGenerateContent?alt=sse&key=k",
                            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).text
        assert "".join(p.get("text", "") for c in sse_data(answer) for p in c["candidates"][0]["content"]["parts"]) \
            == "hello"
        assert [r.model for r in fp.received] == ["gpt-x", "gpt-x", "gemini-x"]


def test_a_stream_that_fails_midway_ends_in_each_doors_own_error(tmp_path) -> None:
    broken = {"text": "hello there", "stream_error": "overloaded_error", "pieces": 6}
    with FakeProvider({"claude-x": broken}) as fp, served(tmp_path, fp, "fakeanth:claude-x") as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.secrets["k"], max_retries=0)
        events = list(client.responses.create(model="m", input="hi", stream=True))
        failed = re.compile("Overloaded|mid-stream")  # the upstream's own error event, or the cut after it
        assert events[-1].type == "response.failed" and failed.search(events[-1].response.error.message)
        with pytest.raises(openai.APIError, match=failed):
            list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                stream=True))
        chunks = sse_data(gemini(gw, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, stream=True).text)
        assert failed.search(chunks[-1]["error"]["message"])
        assert len(gw.rows(3)) == 3


def test_gemini_count_tokens_is_counted_as_messages_count_tokens_are(tmp_path) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hello " * 200}]}]}
    with FakeProvider(SCRIPT) as fp, served(tmp_path, fp, "fakeanth:claude-x") as gw:
        counted = httpx.post(f"{gw.url}/v1beta/models/gemini-x:countTokens", json=body,
                             headers={"x-goog-api-key": gw.secrets["k"]})
        assert counted.status_code == 200 and counted.json()["totalTokens"] > 100
        assert [r.path for r in fp.received] == ["/v1/messages/count_tokens"]
