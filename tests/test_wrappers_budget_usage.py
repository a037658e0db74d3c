"""Budget, Usage and the full stack over scripted models (fast, no network)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from flotilla.errors import BudgetExceeded, ProviderError
from flotilla.events import FallbackUsed, ListSink, ModelCalled
from flotilla.messages import Message, MessagesRequest, MessagesResponse
from flotilla.messages import Usage as TokenUsage
from flotilla.models.budget import Budget, Meter
from flotilla.models.catalog import Catalog, ModelInfo
from flotilla.models.retry import RetryPolicy
from flotilla.models.stack import build_stack
from flotilla.models.usage import Usage
from flotilla.testing import FunctionModel, ScriptedModel, fail, reply

FAST = RetryPolicy(base_delay=0.001, max_delay=0.002)
# Round prices (USD per million tokens) so that costs are easy to check by hand.
CATALOG = Catalog({
    "scripted:priced": ModelInfo("scripted:priced", input=2.0, output=10.0, cache_read=0.2, cache_write=2.5),
    "scripted:cheap": ModelInfo("scripted:cheap", input=1.0, output=1.0),
}, {})


def ask(text: str = "hello") -> MessagesRequest:
    return MessagesRequest(model="any", messages=[Message(role="user", content=text)], max_tokens=64)


def billed(text: str, input: int = 1000, output: int = 100, read: int = 0, write: int = 0) -> MessagesResponse:
    response = reply(text)
    response.usage = TokenUsage(input_tokens=input, output_tokens=output, cache_read_input_tokens=read,
                                cache_creation_input_tokens=write)
    return response


# -- Usage ------------------------------------------------------------------


async def test_usage_records_tokens_and_cost_including_cache() -> None:
    sink, meter = ListSink(), Meter()
    steps = [billed("ok", input=1000, output=200, read=10_000, write=4000)]
    model = Usage(ScriptedModel(steps, name="scripted:priced"), CATALOG, sink, "r1", "advisor", meter)
    await model.request(ask())
    [called] = sink.of(ModelCalled)
    # 1000*2 + 200*10 + 10000*0.2 + 4000*2.5 = 2000 + 2000 + 2000 + 10000 = 16000 per million
    assert called.cost_usd == pytest.approx(0.016)
    assert (called.provider, called.model, called.role, called.run_id) == ("scripted", "priced", "advisor", "r1")
    assert (called.input_tokens, called.output_tokens, called.cache_read_tokens, called.cache_write_tokens) == (
        1000, 200, 10_000, 4000)
    assert called.error is None and called.ttft_ms is None and called.latency_ms >= 0
    assert meter.usd == pytest.approx(0.016) and meter.tokens == 15_200 and meter.calls == 1


async def test_usage_records_failures() -> None:
    sink = ListSink()
    model = Usage(ScriptedModel([fail(529)], name="scripted:priced"), CATALOG, sink)
    with pytest.raises(ProviderError):
        await model.request(ask())
    [called] = sink.of(ModelCalled)
    assert "529" in called.error and called.cost_usd == 0


async def test_usage_records_streams_with_time_to_first_token() -> None:
    async def slow(request: MessagesRequest) -> MessagesResponse:
        await asyncio.sleep(0.02)
        return billed("streamed", input=500, output=50, read=100, write=10)

    sink = ListSink()
    model = Usage(FunctionModel(slow, name="scripted:priced"), CATALOG, sink)
    text = "".join([e.delta.get("text", "") async for e in model.stream(ask()) if e.type == "content_block_delta"])
    assert text == "streamed"
    [called] = sink.of(ModelCalled)
    assert called.ttft_ms is not None and 20 <= called.ttft_ms <= called.latency_ms
    assert (called.input_tokens, called.output_tokens, called.cache_read_tokens, called.cache_write_tokens) == (
        500, 50, 100, 10)
    assert called.cost_usd == pytest.approx((500 * 2 + 50 * 10 + 100 * 0.2 + 10 * 2.5) / 1e6)
    assert called.error is None


async def test_usage_records_a_stream_abandoned_midway() -> None:
    sink = ListSink()
    model = Usage(ScriptedModel([reply("x")], name="scripted:priced"), CATALOG, sink)
    stream = model.stream(ask())
    await anext(stream)
    await stream.aclose()
    [called] = sink.of(ModelCalled)
    assert "closed" in called.error


# -- Budget -----------------------------------------------------------------


async def test_budget_refuses_once_the_spend_reaches_the_cap() -> None:
    meter = Meter()
    inner = Usage(ScriptedModel([billed("one", input=1000, output=1000)] * 2, name="scripted:priced"),
                  CATALOG, meter=meter)
    model = Budget(inner, meter, max_usd=0.01, catalog=CATALOG)
    await model.request(ask())  # costs $0.012, started under the cap
    with pytest.raises(BudgetExceeded, match=r"spent \$0\.0120 of \$0\.0100") as info:
        await model.request(ask())
    assert info.value.spent_usd == pytest.approx(0.012) and info.value.cap_usd == 0.01
    with pytest.raises(BudgetExceeded):
        [e async for e in model.stream(ask())]
    assert inner.model.remaining == 1  # neither refused call reached the model


async def test_budget_refuses_a_request_whose_input_alone_would_cross() -> None:
    model = ScriptedModel([], name="scripted:priced")
    budget = Budget(model, Meter(), max_usd=0.001, catalog=CATALOG)
    big = ask("x" * 8000)  # about 2000 tokens at $2/M = $0.004
    with pytest.raises(BudgetExceeded, match=r"estimated at \$0\.00"):
        await budget.request(big)
    assert model.calls == []


async def test_budget_caps_tokens() -> None:
    meter = Meter()
    meter.add(0.0, TokenUsage(input_tokens=900, output_tokens=100))
    with pytest.raises(BudgetExceeded, match="1000 of 1000 tokens"):
        await Budget(ScriptedModel([]), meter, max_tokens=1000).request(ask())
    with pytest.raises(BudgetExceeded, match="estimated at"):
        await Budget(ScriptedModel([]), meter, max_tokens=1005).request(ask("y" * 400))


async def test_budget_far_from_its_cap_skips_the_estimate_but_still_refuses_at_the_cap() -> None:
    tiny = Catalog({"scripted:tiny": ModelInfo("scripted:tiny", context_window=100, input=1.0)}, {})
    meter = Meter()
    model = ScriptedModel([reply("a"), reply("b")], name="scripted:tiny")
    budget = Budget(model, meter, max_usd=0.5, max_tokens=10_000, catalog=tiny)
    await budget.request(ask("z" * 4000))  # past the context window: the provider's 400 to give, not ours
    meter.add(0.5)
    with pytest.raises(BudgetExceeded, match=r"spent \$0\.5000 of \$0\.5000"):
        await budget.request(ask())
    meter.usd = 0.0
    meter.input_tokens = 9_950  # within one context window of the token cap: estimate again
    with pytest.raises(BudgetExceeded, match="estimated at"):
        await budget.request(ask("z" * 400))
    assert model.remaining == 1


async def test_meter_shared_by_concurrent_tasks_counts_every_call() -> None:
    async def answer(request: MessagesRequest) -> MessagesResponse:
        await asyncio.sleep(0)
        return billed("ok", input=1000, output=0)

    meter = Meter()
    models = [Usage(FunctionModel(answer, name="scripted:cheap"), CATALOG, meter=meter) for _ in range(4)]
    await asyncio.gather(*(m.request(ask()) for m in models for _ in range(50)))
    assert meter.calls == 200 and meter.input_tokens == 200_000
    assert meter.usd == pytest.approx(0.2)


# -- reservations: concurrent calls see each other ---------------------------------

# One call: no input cost, 1000 output tokens at $50/M = $0.05, and max_tokens=1000 bounds it exactly.
METERED = Catalog({"scripted:metered": ModelInfo("scripted:metered", input=0.0, output=50.0)}, {})
CALL_USD = 0.05


def metered_call(seconds: float = 0.01, output: int = 1000) -> FunctionModel:
    async def answer(request: MessagesRequest) -> MessagesResponse:
        await asyncio.sleep(seconds)
        return billed("ok", input=10, output=output)

    return FunctionModel(answer, name="scripted:metered")


def ask_bounded(text: str = "hello") -> MessagesRequest:
    return MessagesRequest(model="any", messages=[Message(role="user", content=text)], max_tokens=1000)


async def calls_until_refused(model: Any) -> int:
    made = 0
    while True:
        try:
            await model.request(ask_bounded())
        except BudgetExceeded:
            return made
        made += 1


@pytest.mark.parametrize("parallel", [3, 8])
async def test_parallel_runs_on_one_meter_overspend_by_at_most_one_call(parallel: int) -> None:
    # 3 attempts, a $0.21 cap, $0.05 calls: checking only the spend let 6 calls start ($0.30).
    meter = Meter()
    stacks = [build_stack(metered_call(), catalog=METERED, meter=meter, budget_usd=0.21, retry=FAST)
              for _ in range(parallel)]
    made = await asyncio.gather(*(calls_until_refused(m) for m in stacks))
    assert 0.21 <= meter.usd <= 0.21 + CALL_USD + 1e-9
    assert sum(made) == meter.calls <= 5
    assert (meter.in_flight, meter.reserved_usd) == (0, 0.0)


async def test_a_lone_run_stops_at_the_cap_plus_at_most_one_call() -> None:
    meter = Meter()
    made = await calls_until_refused(build_stack(metered_call(0), catalog=METERED, meter=meter, budget_usd=0.16))
    assert made == 4 and meter.usd == pytest.approx(0.20)  # the 4th started at $0.15, under the cap


async def test_a_call_that_cannot_start_yet_waits_for_one_in_flight_to_end() -> None:
    meter, log = Meter(), []

    def cheap(label: str) -> FunctionModel:
        async def answer(request: MessagesRequest) -> MessagesResponse:
            log.append(f"{label} starts")
            await asyncio.sleep(0.02)
            log.append(f"{label} ends")
            return billed("ok", input=10, output=100)  # $0.005, far under its $0.05 bound

        return FunctionModel(answer, name="scripted:metered")

    first, second = (build_stack(cheap(x), catalog=METERED, meter=meter, budget_usd=0.05) for x in "ab")
    await asyncio.gather(first.request(ask_bounded()), second.request(ask_bounded()))
    assert log == ["a starts", "a ends", "b starts", "b ends"]
    assert meter.usd == pytest.approx(0.01)


async def test_near_a_cap_calls_reserve_their_estimate_not_the_worst_case() -> None:
    # A full context window of this model costs $0.75 in: reserving that for each call would let
    # only one of three start under a $1 cap. Their estimates (~$0.015 each) let all three run at once.
    catalog = Catalog({"scripted:big": ModelInfo("scripted:big", context_window=200_000, input=3.0,
                                                 output=15.0, cache_write=3.75)}, {})
    meter, running, most = Meter(), [0], [0]

    async def answer(request: MessagesRequest) -> MessagesResponse:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.02)
        running[0] -= 1
        return billed("ok", input=100, output=100)

    stacks = [build_stack(FunctionModel(answer, name="scripted:big"), catalog=catalog, meter=meter, budget_usd=1.0)
              for _ in range(3)]
    await asyncio.gather(*(m.request(ask_bounded()) for m in stacks))
    assert most[0] == 3 and meter.calls == 3


async def test_reservations_are_released_on_error_cancellation_and_an_early_close() -> None:
    meter = Meter()
    failing = build_stack(ScriptedModel([fail(400, "invalid_request_error", "bad")], name="scripted:metered"),
                          catalog=METERED, meter=meter, budget_usd=1.0)
    with pytest.raises(ProviderError):
        await failing.request(ask_bounded())
    assert meter.in_flight == 0

    slow = build_stack(metered_call(10), catalog=METERED, meter=meter, budget_usd=1.0)
    task = asyncio.ensure_future(slow.request(ask_bounded()))
    await asyncio.sleep(0.01)
    assert meter.in_flight == 1 and meter.reserved_usd == pytest.approx(CALL_USD)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert meter.in_flight == 0

    streamed = build_stack(metered_call(0), catalog=METERED, meter=meter, budget_usd=1.0)
    stream = streamed.stream(ask_bounded())
    await anext(stream)
    assert meter.in_flight == 1
    await stream.aclose()
    assert meter.in_flight == 0 and (meter.calls, meter.input_tokens) == (3, 10)  # what it had reported stays


async def test_an_unpriced_model_reserves_nothing_and_stops_on_the_spend() -> None:
    meter = Meter(usd=0.10)
    model = build_stack(ScriptedModel([reply("a")], name="local:free"), catalog=METERED, meter=meter,
                        budget_usd=0.10)
    with pytest.raises(BudgetExceeded, match=r"spent \$0\.1000 of \$0\.1000"):
        await model.request(ask_bounded())
    meter.usd = 0.09
    assert (await model.request(ask_bounded())).text() == "a"


async def test_a_meter_seeded_from_the_store_continues_the_same_total() -> None:
    from flotilla.store import SQLiteStore

    store = SQLiteStore(":memory:")
    run = store.create_run("agent", "before the crash")
    first = build_stack(metered_call(0), catalog=METERED, sink=store, run_id=run, meter=Meter(), budget_usd=0.16)
    await first.request(ask_bounded())
    await first.request(ask_bounded())
    resumed = Meter.seeded(store.usage([run]))
    assert (resumed.usd, resumed.calls, resumed.output_tokens) == (pytest.approx(0.10), 2, 2000)
    again = build_stack(metered_call(0), catalog=METERED, sink=store, run_id=run, meter=resumed, budget_usd=0.16)
    assert await calls_until_refused(again) == 2  # $0.10 + two calls: the cap applies to one total
    assert resumed.usd == pytest.approx(0.20)


# -- the whole stack --------------------------------------------------------


async def test_stack_hands_an_overload_to_the_fallback_without_backoff() -> None:
    sink = ListSink()
    primary = ScriptedModel([fail(529)], name="scripted:priced")
    second = ScriptedModel([billed("second"), billed("again")], name="scripted:cheap")
    model = build_stack(primary, fallbacks=[second], catalog=CATALOG, sink=sink, run_id="r",
                        retry=RetryPolicy(base_delay=5.0))
    started = time.perf_counter()
    assert (await model.request(ask())).text() == "second"
    assert time.perf_counter() - started < 1.0  # a 5 s backoff on the primary would blow this
    assert (await model.request(ask())).text() == "again"  # sticky: the primary is not tried
    calls = sink.of(ModelCalled)
    assert [(c.model, c.error is None) for c in calls] == [("priced", False), ("cheap", True), ("cheap", True)]
    assert len(sink.of(FallbackUsed)) == 1
    primary.assert_consumed()


async def test_stack_retries_a_rate_limit_on_the_same_model() -> None:
    primary = ScriptedModel([fail(429, "rate_limit_error", retry_after=0.01), reply("primary")],
                            name="scripted:priced")
    second = ScriptedModel([], name="scripted:cheap")
    model = build_stack(primary, fallbacks=[second], catalog=CATALOG, retry=FAST)
    assert (await model.request(ask())).text() == "primary"


async def test_stack_retries_the_last_model_of_the_chain() -> None:
    primary = ScriptedModel([fail(529)], name="scripted:priced")
    last = ScriptedModel([fail(529), reply("finally")], name="scripted:cheap")
    model = build_stack(primary, fallbacks=[last], catalog=CATALOG, retry=FAST)
    assert (await model.request(ask())).text() == "finally"
    last.assert_consumed()


async def test_stack_budget_counts_every_model_and_reset_returns_to_the_primary() -> None:
    meter = Meter()
    primary = ScriptedModel([fail(503, "api_error"), billed("primary", input=5000, output=0)],
                            name="scripted:priced")
    second = ScriptedModel([billed("second", input=5000, output=0)], name="scripted:cheap")
    model: Any = build_stack(primary, fallbacks=[second], catalog=CATALOG, meter=meter, budget_usd=0.014)
    assert (await model.request(ask())).text() == "second"   # $0.005
    model.reset()
    assert model.name == "scripted:priced"
    assert (await model.request(ask())).text() == "primary"  # $0.010
    with pytest.raises(BudgetExceeded, match=r"spent \$0\.0150 of \$0\.0140"):
        await model.request(ask())
    assert model.meter is meter and meter.calls == 3  # the failed call counts as a call, at $0


async def test_stack_streams_through_every_layer() -> None:
    sink = ListSink()
    model = build_stack(ScriptedModel([billed("hi")], name="scripted:priced"), catalog=CATALOG, sink=sink)
    events = [e async for e in model.stream(ask())]
    assert events[-1].type == "message_stop"
    [called] = sink.of(ModelCalled)
    assert called.ttft_ms is not None and called.cost_usd == pytest.approx(0.003)
