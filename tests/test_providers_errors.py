"""Every way a provider call fails, through both adapters, lands as the right ProviderError."""

from __future__ import annotations

import socket

import pytest

from flotilla.errors import ProviderError
from flotilla.messages import Message, MessagesRequest
from flotilla.models.provider_errors import retry_after
from flotilla.models.anthropic import AnthropicModel
from flotilla.models.openai import OpenAIModel

REQUEST = MessagesRequest(model="x", messages=[Message(role="user", content="hello")], max_tokens=64)


def build(kind: str, url: str, model: str = "m", timeout: float = 600.0):
    if kind == "anthropic":
        return AnthropicModel(model, base_url=url, api_key="k", timeout=timeout)
    return OpenAIModel(model, base_url=url + "/v1", api_key="k", timeout=timeout)


async def failure(model, streamed: bool) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        if streamed:
            async for _ in model.stream(REQUEST):
                pass
        else:
            await model.request(REQUEST)
    return caught.value


ADAPTERS = pytest.mark.parametrize("kind", ["anthropic", "openai"])
MODES = pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])

STATUSES = [  # step, status, kind, retryable, retry_after
    ({"status": 400, "message": "messages: too short"}, 400, "invalid_request_error", False, None),
    ({"status": 401}, 401, "authentication_error", False, None),
    ({"status": 403}, 403, "permission_error", False, None),
    ({"status": 404}, 404, "not_found_error", False, None),
    ({"status": 429, "retry_after": 7}, 429, "rate_limit_error", True, 7.0),
    ({"status": 500}, 500, "api_error", True, None),
    ({"status": 529}, 529, "overloaded_error", True, None),
]


@ADAPTERS
@MODES
@pytest.mark.parametrize("step,status,error_kind,retryable,after", STATUSES,
                         ids=[str(s[1]) for s in STATUSES])
async def test_http_statuses(fake_provider, kind, streamed, step, status, error_kind, retryable, after) -> None:
    fp = fake_provider({"m": [step]})
    error = await failure(build(kind, fp.url), streamed)
    assert (error.status, error.kind, error.retryable, error.retry_after) == (status, error_kind, retryable, after)
    assert error.provider == kind and error.model == "m"
    if "message" in step:
        assert "messages: too short" in str(error)


@ADAPTERS
async def test_overloaded_is_overloaded(fake_provider, kind) -> None:
    fp = fake_provider({"m": [{"status": 529}]})
    assert (await failure(build(kind, fp.url), False)).overloaded


@ADAPTERS
async def test_an_unknown_model_is_not_found(fake_provider, kind) -> None:
    fp = fake_provider({"m": [{"text": "x"}]})
    error = await failure(build(kind, fp.url, model="no-such-model"), False)
    assert (error.status, error.kind, error.retryable) == (404, "not_found_error", False)
    assert "no-such-model" in str(error)


@ADAPTERS
async def test_a_wrong_key_is_an_authentication_error(fake_provider, kind) -> None:
    fp = fake_provider({"m": [{"text": "x"}]}, api_key="the-right-one")
    error = await failure(build(kind, fp.url), False)
    assert (error.status, error.kind, error.retryable) == (401, "authentication_error", False)


@ADAPTERS
@MODES
async def test_a_slow_first_byte_times_out(fake_provider, kind, streamed) -> None:
    fp = fake_provider({"m": [{"text": "late", "delay": 1.0}]})
    error = await failure(build(kind, fp.url, timeout=0.2), streamed)
    assert (error.status, error.kind, error.retryable) == (None, "timeout", True)


@ADAPTERS
@MODES
async def test_connection_refused(kind, streamed) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    error = await failure(build(kind, f"http://127.0.0.1:{port}"), streamed)
    assert (error.status, error.kind, error.retryable) == (None, "connection_error", True)


@ADAPTERS
@MODES
async def test_a_cut_connection(fake_provider, kind, streamed) -> None:
    fp = fake_provider({"m": [{"text": "this answer will not arrive whole", "cut_after": 3}]})
    error = await failure(build(kind, fp.url), streamed)
    assert (error.status, error.kind, error.retryable) == (None, "connection_error", True)


@ADAPTERS
async def test_a_stream_cut_after_events_were_yielded(fake_provider, kind) -> None:
    fp = fake_provider({"m": [{"text": "this answer will not arrive whole", "cut_after": 3}]})
    seen = []
    with pytest.raises(ProviderError) as caught:
        async for event in build(kind, fp.url).stream(REQUEST):
            seen.append(event.type)
    assert seen and seen[0] == "message_start" and "message_stop" not in seen
    assert caught.value.kind == "connection_error"


@ADAPTERS
@MODES
async def test_malformed_json(fake_provider, kind, streamed) -> None:
    fp = fake_provider({"m": [{"malformed": True}]})
    error = await failure(build(kind, fp.url), streamed)
    assert (error.status, error.kind) == (None, "malformed_response")


@ADAPTERS
async def test_an_error_event_inside_a_stream(fake_provider, kind) -> None:
    fp = fake_provider({"m": [{"text": "starts fine", "stream_error": "overloaded_error", "cut_after": 2}]})
    error = await failure(build(kind, fp.url), True)
    assert (error.status, error.kind, error.retryable) == (529, "overloaded_error", True)


async def test_an_empty_openai_account_is_not_worth_retrying(fake_provider) -> None:
    fp = fake_provider({"m": [{"status": 429, "error_type": "insufficient_quota", "message": "You exceeded your quota"}]})
    error = await failure(build("openai", fp.url), False)
    assert (error.status, error.kind, error.retryable) == (429, "billing_error", False)


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
