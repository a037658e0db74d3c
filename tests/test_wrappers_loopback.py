"""The wrapper stack around the official SDK adapters, over loopback HTTP to the fake provider."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flotilla.errors import BudgetExceeded, ProviderError
from flotilla.events import FallbackUsed, ListSink, ModelCalled
from flotilla.messages import Message, MessagesRequest
from flotilla.models.anthropic import AnthropicModel
from flotilla.models.catalog import Catalog, ModelInfo
from flotilla.models.meter import Meter
from flotilla.models.retry import RetryPolicy
from flotilla.models.stack import build_stack
from flotilla.testing.fake_provider import FakeProvider

CATALOG = Catalog.load()
FAST = RetryPolicy(base_delay=0.001, max_delay=0.002)
_names = itertools.count(1)


@pytest.fixture(scope="module")
def fp() -> Iterator[FakeProvider]:
    """One server for the module (conftest's ``fake_provider`` starts one per test, ~0.2 s each to stop)."""
    with FakeProvider() as server:
        yield server


def model_name(stem: str = "claude-test") -> str:
    """A model name no other test scripts, so one server serves the whole module."""
    return f"{stem}-{next(_names)}"


def anthropic(fp: FakeProvider, model: str) -> AnthropicModel:
    return AnthropicModel(model, base_url=fp.url, api_key="test-key")


def openai(fp: FakeProvider, model: str) -> Any:
    from flotilla.models.openai import OpenAIModel

    return OpenAIModel(model, base_url=fp.url + "/v1", api_key="test-key")


def ask(text: str = "hello") -> MessagesRequest:
    return MessagesRequest(model="any", messages=[Message(role="user", content=text)], max_tokens=64)


async def test_primary_overloaded_the_next_answers(fp: FakeProvider) -> None:
    a, b = model_name(), model_name()
    fp.add(a, [{"status": 529}])
    fp.add(b, [{"text": "from b"}])
    sink = ListSink()
    model = build_stack(anthropic(fp, a), fallbacks=[anthropic(fp, b)], catalog=CATALOG, sink=sink, retry=FAST)
    assert (await model.request(ask())).text() == "from b"
    assert (fp.count(a), fp.count(b)) == (1, 1)  # the primary's 529 went to the fallback, not to a retry
    [used] = sink.of(FallbackUsed)
    assert (used.from_model, used.to_model) == (f"anthropic:{a}", f"anthropic:{b}")
    assert [c.error is None for c in sink.of(ModelCalled)] == [False, True]


async def test_a_chain_of_three_fallbacks_each_tried_once(fp: FakeProvider) -> None:
    names = [model_name() for _ in range(4)]
    for name, step in zip(names, [{"status": 529}, {"status": 500}, {"status": 503}, {"text": "last"}]):
        fp.add(name, [step])
    sink = ListSink()
    models = [anthropic(fp, n) for n in names]
    model = build_stack(models[0], fallbacks=models[1:], catalog=CATALOG, sink=sink, retry=FAST)
    assert (await model.request(ask())).text() == "last"
    assert [fp.count(n) for n in names] == [1, 1, 1, 1]
    assert [(e.from_model, e.to_model) for e in sink.of(FallbackUsed)] == [
        (f"anthropic:{x}", f"anthropic:{y}") for x, y in zip(names, names[1:])]


async def test_no_fallback_on_a_bad_request(fp: FakeProvider) -> None:
    a, b = model_name(), model_name()
    fp.add(a, [{"status": 400, "message": "messages: roles must alternate"}])
    fp.add(b, [{"text": "never"}])
    model = build_stack(anthropic(fp, a), fallbacks=[anthropic(fp, b)], catalog=CATALOG, retry=FAST)
    with pytest.raises(ProviderError, match="roles must alternate") as info:
        await model.request(ask())
    assert info.value.status == 400 and (fp.count(a), fp.count(b)) == (1, 0)


async def test_no_switch_after_the_first_streamed_event(fp: FakeProvider) -> None:
    a, b = model_name(), model_name()
    fp.add(a, [{"text": "a long answer cut off mid-way", "cut_after": 3}])
    fp.add(b, [{"text": "never"}])
    sink = ListSink()
    model = build_stack(anthropic(fp, a), fallbacks=[anthropic(fp, b)], catalog=CATALOG, sink=sink, retry=FAST)
    seen: list[Any] = []
    with pytest.raises(ProviderError) as info:
        async for event in model.stream(ask()):
            seen.append(event)
    assert info.value.status is None and seen and seen[0].type == "message_start"
    assert (fp.count(a), fp.count(b)) == (1, 0) and sink.of(FallbackUsed) == []
    [called] = sink.of(ModelCalled)
    assert called.error and "connection" in called.error


async def test_stream_falls_back_on_overload_before_the_first_event(fp: FakeProvider) -> None:
    a, b = model_name(), model_name()
    fp.add(a, [{"status": 529}])
    fp.add(b, [{"text": "streamed from b"}])
    model = build_stack(anthropic(fp, a), fallbacks=[anthropic(fp, b)], catalog=CATALOG, retry=FAST)
    text = "".join([e.delta.get("text", "") async for e in model.stream(ask()) if e.type == "content_block_delta"])
    assert text == "streamed from b"


async def test_retry_after_is_honoured(fp: FakeProvider) -> None:
    a = model_name()
    fp.add(a, [{"status": 429, "retry_after": 0.2}, {"text": "after the wait"}])
    model = build_stack(anthropic(fp, a), catalog=CATALOG, retry=FAST)
    started = time.perf_counter()
    assert (await model.request(ask())).text() == "after the wait"
    assert time.perf_counter() - started >= 0.2 and fp.count(a) == 2


async def test_cost_from_the_catalog_including_cache_tokens(fp: FakeProvider) -> None:
    fp.add("claude-sonnet-5-5", [{"text": "cached", "input_tokens": 1000, "output_tokens": 1000,
                                  "cache_read": 10_000, "cache_write": 2000}])
    sink = ListSink()
    model = build_stack(anthropic(fp, "claude-sonnet-5-5"), catalog=CATALOG, sink=sink, run_id="run-1")
    await model.request(ask())
    [called] = sink.of(ModelCalled)
    assert (called.provider, called.model, called.run_id) == ("anthropic", "claude-sonnet-5-5", "run-1")
    assert (called.input_tokens, called.output_tokens, called.cache_read_tokens, called.cache_write_tokens) == (
        1000, 1000, 10_000, 2000)
    # sonnet 5.5: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million
    assert called.cost_usd == pytest.approx((1000 * 3 + 1000 * 15 + 10_000 * 0.3 + 2000 * 3.75) / 1e6)


async def test_budget_refusal_names_the_spend(fp: FakeProvider) -> None:
    fp.add("claude-haiku-5-5", [{"text": "one", "input_tokens": 10_000, "output_tokens": 2000}])
    model = build_stack(anthropic(fp, "claude-haiku-5-5"), catalog=CATALOG, budget_usd=0.015)
    await model.request(ask())  # $0.01 + $0.01 = $0.02: started under the cap, so it ran
    with pytest.raises(BudgetExceeded, match=r"spent \$0\.0200 of \$0\.0150"):
        await model.request(ask())
    assert fp.count("claude-haiku-5-5") == 1


async def test_parallel_calls_over_loopback_overspend_by_at_most_one_call(fp: FakeProvider) -> None:
    name = model_name()  # each call: 1000 output tokens at $50/M = $0.05; max_tokens=1000 bounds it
    fp.add(name, {"text": "ok", "input_tokens": 10, "output_tokens": 1000, "delay": 0.02})
    priced = Catalog({f"anthropic:{name}": ModelInfo(f"anthropic:{name}", input=0.0, output=50.0)}, {})
    meter = Meter()
    request = MessagesRequest(model=name, messages=[Message(role="user", content="go")], max_tokens=1000)

    async def attempt() -> None:
        model = build_stack(anthropic(fp, name), catalog=priced, meter=meter, budget_usd=0.21, retry=FAST)
        with pytest.raises(BudgetExceeded):
            while True:
                await model.request(request)

    await asyncio.gather(*(attempt() for _ in range(4)))
    assert 0.21 <= meter.usd <= 0.26 + 1e-9 and fp.count(name) == meter.calls <= 5


async def test_streams_record_time_to_first_token(fp: FakeProvider) -> None:
    a = model_name()
    fp.add(a, [{"text": "one two three four", "delay": 0.05, "event_delay": 0.005}])
    sink = ListSink()
    model = build_stack(anthropic(fp, a), catalog=CATALOG, sink=sink)
    events = [e async for e in model.stream(ask())]
    assert events[-1].type == "message_stop"
    [called] = sink.of(ModelCalled)
    assert called.error is None and called.output_tokens > 0
    assert called.ttft_ms is not None and 50 <= called.ttft_ms < called.latency_ms


async def test_fallback_sticks_for_the_rest_of_the_turn(fp: FakeProvider) -> None:
    a, b = model_name(), model_name()
    fp.add(a, [{"status": 529}, {"text": "primary, next turn"}])
    fp.add(b, [{"text": "b one"}, {"text": "b two"}])
    model: Any = build_stack(anthropic(fp, a), fallbacks=[anthropic(fp, b)], catalog=CATALOG, retry=FAST)
    assert (await model.request(ask())).text() == "b one"
    assert [e.delta.get("text", "") async for e in model.stream(ask()) if e.type == "content_block_delta"]
    assert (fp.count(a), fp.count(b)) == (1, 2)
    model.reset()
    assert (await model.request(ask())).text() == "primary, next turn"


# -- across wire formats: the OpenAI adapter in the same chains --------------


@pytest.mark.parametrize(("first", "second"), [("anthropic", "openai"), ("openai", "anthropic"), ("openai", "openai")])
async def test_fallback_across_wire_formats(fp: FakeProvider, first: str, second: str) -> None:
    make = {"anthropic": anthropic, "openai": openai}
    a, b = model_name(first), model_name(second)
    fp.add(a, [{"status": 529}, {"status": 503}])
    fp.add(b, [{"text": f"{second} answers"}, {"text": f"{second} streams"}])
    model = build_stack(make[first](fp, a), fallbacks=[make[second](fp, b)], catalog=CATALOG, retry=FAST)
    assert (await model.request(ask())).text() == f"{second} answers"
    model.reset()
    text = "".join([e.delta.get("text", "") async for e in model.stream(ask()) if e.type == "content_block_delta"])
    assert text == f"{second} streams" and (fp.count(a), fp.count(b)) == (2, 2)


async def test_openai_stream_cut_does_not_switch(fp: FakeProvider) -> None:
    a, b = model_name("gpt"), model_name("gpt")
    fp.add(a, [{"text": "a long answer cut off mid-way", "cut_after": 2}])
    fp.add(b, [{"text": "never"}])
    model = build_stack(openai(fp, a), fallbacks=[openai(fp, b)], catalog=CATALOG, retry=FAST)
    seen: list[Any] = []
    with pytest.raises(ProviderError):
        async for event in model.stream(ask()):
            seen.append(event)
    assert seen and (fp.count(a), fp.count(b)) == (1, 0)


async def test_openai_stream_usage_cost_and_ttft(fp: FakeProvider) -> None:
    fp.add("gpt-5-mini", [{"text": "one two three", "input_tokens": 4000, "output_tokens": 1000,
                           "cache_read": 8000, "delay": 0.03}])
    sink = ListSink()
    model = build_stack(openai(fp, "gpt-5-mini"), catalog=CATALOG, sink=sink, role="advisor")
    [e async for e in model.stream(ask())]
    [called] = sink.of(ModelCalled)
    assert (called.provider, called.model, called.role) == ("openai", "gpt-5-mini", "advisor")
    assert (called.input_tokens, called.output_tokens, called.cache_read_tokens) == (4000, 1000, 8000)
    # gpt-5-mini: $0.25 in, $2 out, $0.025 cache read per million
    assert called.cost_usd == pytest.approx((4000 * 0.25 + 1000 * 2 + 8000 * 0.025) / 1e6)
    assert called.ttft_ms is not None and 30 <= called.ttft_ms <= called.latency_ms
