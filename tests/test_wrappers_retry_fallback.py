"""Retry and Fallback over scripted models (fast, no network)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flotilla.errors import ProviderError, UserError
from flotilla.events import FallbackUsed, ListSink
from flotilla.messages import Message, MessagesRequest, MessageStop, response_to_events
from flotilla.models.fallback import Fallback, falls_back
from flotilla.models.retry import Retry, RetryPolicy, retry_delay
from flotilla.testing import ScriptedModel, fail, reply

FAST = RetryPolicy(base_delay=0.001, max_delay=0.002)


def ask(text: str = "hello") -> MessagesRequest:
    return MessagesRequest(model="any", messages=[Message(role="user", content=text)], max_tokens=64)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in stream]


class CutStream:
    """A model whose streams fail: ``cut_after`` events in (0: before the first), for ``times`` calls."""

    def __init__(self, name: str, cut_after: int, times: int = 1, status: int | None = None) -> None:
        self.name, self.cut_after, self.times, self.status = name, cut_after, times, status
        self.calls = 0

    async def stream(self, request: MessagesRequest) -> AsyncIterator[Any]:
        self.calls += 1
        events = response_to_events(reply(f"from {self.name}", stop_reason="end_turn"))
        for i, event in enumerate(events):
            if self.calls <= self.times and i == self.cut_after:
                raise ProviderError("connection reset", status=self.status, kind="api_connection_error")
            yield event

    async def request(self, request: MessagesRequest) -> Any:
        raise NotImplementedError

    async def count_tokens(self, request: MessagesRequest) -> int:
        return 1


# -- the delay rule ---------------------------------------------------------


def test_retry_delay_doubles_caps_and_jitters() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=0.25)
    assert [retry_delay(policy, n, None, 0.0) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 8, 8]
    assert retry_delay(policy, 1, None, 0.999) == pytest.approx(0.5 * (1 - 0.25 * 0.999))


def test_retry_delay_prefers_retry_after_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert retry_delay(policy, 3, 1.5, 0.9) == 1.5
    assert retry_delay(policy, 1, 600, 0.0) == 10


# -- Retry ------------------------------------------------------------------


async def test_retry_recovers_from_overload() -> None:
    model = ScriptedModel([fail(529), fail(500, "api_error"), reply("ok")])
    assert (await Retry(model, FAST).request(ask())).text() == "ok"
    model.assert_consumed()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_retry_does_not_retry_client_errors(status: int) -> None:
    model = ScriptedModel([fail(status, "invalid_request_error", "bad")])
    with pytest.raises(ProviderError) as info:
        await Retry(model, FAST).request(ask())
    assert info.value.status == status and len(model.calls) == 1


async def test_retry_gives_up_after_max_attempts() -> None:
    model = ScriptedModel([fail(529)] * 3)
    with pytest.raises(ProviderError, match="529"):
        await Retry(model, RetryPolicy(max_attempts=3, base_delay=0.001)).request(ask())
    model.assert_consumed()


async def test_retry_gives_up_rather_than_wait_past_the_total() -> None:
    model = ScriptedModel([fail(429, "rate_limit_error", retry_after=5.0)])
    with pytest.raises(ProviderError, match="429"):
        await Retry(model, RetryPolicy(max_total_wait=1.0)).request(ask())
    model.assert_consumed()


async def test_retry_honours_retry_after() -> None:
    model = ScriptedModel([fail(429, "rate_limit_error", retry_after=0.2), reply("ok")])
    started = time.perf_counter()
    await Retry(model, FAST).request(ask())
    assert time.perf_counter() - started >= 0.2


async def test_retry_hands_over_what_a_fallback_handles() -> None:
    model = ScriptedModel([fail(529)])
    retry = Retry(model, FAST, hand_over=lambda e: e.overloaded)
    with pytest.raises(ProviderError):
        await retry.request(ask())
    model.assert_consumed()


async def test_retry_retries_a_stream_that_fails_before_its_first_event() -> None:
    model = CutStream("scripted:a", cut_after=0, times=2)
    events = await collect(Retry(model, FAST).stream(ask()))
    assert isinstance(events[-1], MessageStop) and model.calls == 3


async def test_retry_never_retries_a_stream_after_its_first_event() -> None:
    model = CutStream("scripted:a", cut_after=2)
    seen: list[Any] = []
    with pytest.raises(ProviderError, match="connection reset"):
        async for event in Retry(model, FAST).stream(ask()):
            seen.append(event)
    assert len(seen) == 2 and model.calls == 1


# -- Fallback ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind", "rate", "expected"), [
    (529, "overloaded_error", False, True), (500, "api_error", False, True), (503, "api_error", False, True),
    (None, "api_timeout_error", False, True), (None, "api_connection_error", False, True),
    (429, "rate_limit_error", False, False), (429, "rate_limit_error", True, True),
    (400, "invalid_request_error", True, False), (401, "authentication_error", True, False),
    (403, "permission_error", True, False), (404, "not_found_error", True, False),
    (413, "request_too_large", True, False),
])
def test_which_errors_fall_back(status: int | None, kind: str, rate: bool, expected: bool) -> None:
    assert falls_back(ProviderError("x", status=status, kind=kind), on_rate_limit=rate) is expected


def test_an_unclassified_error_does_not_fall_back() -> None:
    assert not falls_back(ProviderError("TypeError: oops", status=None, kind="api_error", retryable=False))


async def test_primary_overloaded_the_next_answers() -> None:
    sink = ListSink()
    primary = ScriptedModel([fail(529)], name="scripted:primary")
    second = ScriptedModel([reply("from second")], name="scripted:second")
    model = Fallback(primary, [second], sink=sink, run_id="r1")
    assert (await model.request(ask())).text() == "from second"
    [used] = sink.of(FallbackUsed)
    assert (used.from_model, used.to_model, used.run_id) == ("scripted:primary", "scripted:second", "r1")
    assert "529" in used.reason


async def test_fallback_is_sticky_for_the_turn_until_reset() -> None:
    primary = ScriptedModel([fail(529), reply("primary again")], name="scripted:primary")
    second = ScriptedModel([reply("one"), reply("two")], name="scripted:second")
    model = Fallback(primary, [second])
    assert (await model.request(ask())).text() == "one"
    assert model.name == "scripted:second"
    # The primary has one step left: a second call to it now would use it and fail the check below.
    assert (await model.request(ask())).text() == "two"
    assert primary.remaining == 1
    model.reset()
    assert (await model.request(ask())).text() == "primary again"
    primary.assert_consumed()
    second.assert_consumed()


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_no_fallback_on_client_errors(status: int) -> None:
    second = ScriptedModel([], name="scripted:second")
    model = Fallback(ScriptedModel([fail(status, "invalid_request_error", "bad")]), [second])
    with pytest.raises(ProviderError) as info:
        await model.request(ask())
    assert info.value.status == status and second.calls == []


async def test_rate_limit_falls_back_only_when_asked() -> None:
    for on_rate_limit, expect_calls in ((False, 0), (True, 1)):
        second = ScriptedModel([reply("ok")] * expect_calls, name="scripted:second")
        model = Fallback(ScriptedModel([fail(429, "rate_limit_error")]), [second], on_rate_limit=on_rate_limit)
        if on_rate_limit:
            assert (await model.request(ask())).text() == "ok"
        else:
            with pytest.raises(ProviderError, match="429"):
                await model.request(ask())
        assert len(second.calls) == expect_calls


def test_at_most_three_fallbacks() -> None:
    models = [ScriptedModel([], name=f"scripted:m{i}") for i in range(5)]
    Fallback(models[0], models[1:4])
    with pytest.raises(UserError, match="at most 3 fallback models.*got 4"):
        Fallback(models[0], models[1:5])


async def test_all_failing_raises_the_last_error_naming_the_chain() -> None:
    sink = ListSink()
    chain = [ScriptedModel([fail(529)], name="scripted:a"), ScriptedModel([fail(503, "api_error")], name="scripted:b"),
             ScriptedModel([fail(500, "api_error", "boom")], name="scripted:c")]
    with pytest.raises(ProviderError) as info:
        await Fallback(chain[0], chain[1:], sink=sink).request(ask())
    assert info.value.status == 500
    assert "boom" in str(info.value) and "scripted:a → scripted:b → scripted:c" in str(info.value)
    assert len(sink.of(FallbackUsed)) == 2


async def test_stream_falls_back_before_its_first_event() -> None:
    primary = CutStream("scripted:primary", cut_after=0, status=529)
    second = ScriptedModel([reply("from second")], name="scripted:second")
    events = await collect(Fallback(primary, [second]).stream(ask()))
    assert events[2].delta["text"] == "from second"


async def test_stream_never_switches_after_its_first_event() -> None:
    primary = CutStream("scripted:primary", cut_after=2)
    second = ScriptedModel([], name="scripted:second")
    seen: list[Any] = []
    with pytest.raises(ProviderError, match="connection reset"):
        async for event in Fallback(primary, [second]).stream(ask()):
            seen.append(event)
    assert len(seen) == 2 and second.calls == []
