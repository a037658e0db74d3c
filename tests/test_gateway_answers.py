"""Answers that help: no route, upstream faults mapped right, 429 along a chain on request, the model list."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from flotilla.gateway.server import startup_warnings
from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import gateway

OAI = 'default = "fakeoai:gpt-test"\n'
HI = [{"role": "user", "content": "hi"}]


def test_no_route_is_a_404_naming_the_model_and_the_fix(tmp_path) -> None:
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, "", environ={}) as gw:
        assert gw.app.live.current.unrouted_families() == ["opus", "sonnet", "haiku"]
        assert "opus, sonnet, haiku" in startup_warnings(gw.app)[0]
        for path, body in (("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": HI}),
                           ("/v1/messages/count_tokens", {"model": "claude-sonnet-4-5", "messages": HI})):
            r = httpx.post(gw.url + path, json=body, timeout=10)
            assert r.status_code == 404, r.text
            error = r.json()["error"]
            assert error["type"] == "not_found_error"
            assert "claude-sonnet-4-5" in error["message"] and '[gateway] default = "provider:model"' in error["message"]
            assert "ANTHROPIC_API_KEY" in error["message"]
        with pytest.raises(anthropic.NotFoundError):  # the SDK (and Claude Code) do not retry a 404
            anthropic.Anthropic(base_url=gw.url, api_key="k", max_retries=3).messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=HI)
        assert fp.count() == 0


def test_start_up_warning_names_only_the_families_without_a_route(tmp_path) -> None:
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, 'background = "fakeoai:small"\n', environ={}) as gw:
        assert gw.app.live.current.unrouted_families() == ["opus", "sonnet"]
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, OAI, environ={}) as gw:
        assert startup_warnings(gw.app) == []


def test_count_tokens_and_messages_agree_on_an_unknown_provider(tmp_path) -> None:
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        answers = [httpx.post(gw.url + path, json={"model": "nosuch:thing", "max_tokens": 5, "messages": HI})
                   for path in ("/v1/messages", "/v1/messages/count_tokens")]
        assert [a.status_code for a in answers] == [404, 404]
        assert answers[0].json()["error"] == answers[1].json()["error"]


@pytest.mark.parametrize("stream", [False, True])
def test_invalid_json_from_the_upstream_is_an_api_error(tmp_path, stream) -> None:
    with FakeProvider({"gpt-test": {"malformed": True}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        body = {"model": "m", "max_tokens": 5, "messages": HI, "stream": stream}
        r = httpx.post(gw.url + "/v1/messages", json=body, timeout=10)
        assert r.status_code == 500 and r.json()["error"]["type"] == "api_error", r.text
        assert "not valid JSON" in r.json()["error"]["message"]


@pytest.mark.parametrize("option,served_by", [("", None), ("fallback_on_rate_limit = true\n", "claude-up"),
                                              ('fallback_on_rate_limit = ["default"]\n', "claude-up"),
                                              ('fallback_on_rate_limit = ["think"]\n', None)])
def test_a_429_moves_along_the_chain_only_where_the_route_asks(tmp_path, option, served_by) -> None:
    script = {"gpt-test": {"status": 429, "retry_after": 30}, "claude-up": {"text": "from the fallback"}}
    chain = 'default = ["fakeoai:gpt-test", "fakeanth:claude-up"]\n' + option
    with FakeProvider(script) as fp, gateway(tmp_path, fp.url, chain) as gw:
        for stream in (False, True):
            body = {"model": "m", "max_tokens": 5, "messages": HI, "stream": stream}
            r = httpx.post(gw.url + "/v1/messages", json=body, timeout=10)
            if served_by:
                assert r.status_code == 200 and "from the fallback" in _text(r, stream)
            else:
                assert r.status_code == 429 and r.headers["retry-after"] == "30"
        assert fp.count("claude-up") == (2 if served_by else 0)


def _text(r: httpx.Response, stream: bool) -> str:
    if not stream:
        return r.json()["content"][0]["text"]
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    return "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")


def test_models_list_pages_and_single_models(tmp_path) -> None:
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, 'aliases = {fast = "fakeoai:gpt-test"}\n') as gw:
        every = httpx.get(gw.url + "/v1/models?limit=1000").json()
        names = [m["id"] for m in every["data"]]
        assert names[0] == "fast" and "sonnet" in names and every["has_more"] is False
        page = httpx.get(gw.url + "/v1/models?limit=2").json()
        assert [m["id"] for m in page["data"]] == names[:2] and page["has_more"] is True
        after = httpx.get(gw.url + f"/v1/models?limit=2&after_id={page['last_id']}").json()
        assert [m["id"] for m in after["data"]] == names[2:4]
        before = httpx.get(gw.url + f"/v1/models?limit=1&before_id={names[3]}").json()
        assert [m["id"] for m in before["data"]] == [names[2]]
        assert len(httpx.get(gw.url + "/v1/models").json()["data"]) == min(20, len(names))
        assert httpx.get(gw.url + "/v1/models?limit=0").status_code == 400
        sdk = gw.client()
        assert [m.id for m in sdk.models.list(limit=3)][:3] == names[:3]
        assert sdk.models.retrieve("fast").id == "fast"
        with pytest.raises(anthropic.NotFoundError):
            sdk.models.retrieve("no-such-model")
