"""What the adapter plus the full wrapper stack add per call, over a bare SDK call.

Against the fake provider on loopback, with the same SDK client settings on
both sides (max_retries=0, timeout=600), calls alternate bare / stacked so
that drift in the machine hits both alike. Plain and streamed, Anthropic and
OpenAI wire formats. A last row measures the wrappers alone over an in-memory
``FunctionModel``, with no HTTP at all. Target: under 0.5 ms added at the median.

    .venv/bin/python bench/model_stack.py [--calls 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai

from flotilla.events import ListSink
from flotilla.messages import Message, MessagesRequest, response_to_events
from flotilla.models.anthropic import AnthropicModel
from flotilla.models.catalog import Catalog
from flotilla.models.openai import OpenAIModel
from flotilla.models.retry import RetryPolicy
from flotilla.models.stack import build_stack
from flotilla.testing import FunctionModel, reply
from flotilla.testing.fake_provider import FakeProvider

Call = Callable[[], Awaitable[Any]]
PROMPT = "Say hello in one short sentence."
STEP = {"text": "Hello there! This is a short answer of a few words.", "input_tokens": 12, "output_tokens": 14}


class _ClearingSink(ListSink):
    """Keeps events like a real sink would, without growing through the whole benchmark."""

    def emit(self, event: Any) -> None:
        super().emit(event)
        if len(self.events) > 1000:
            self.events.clear()


def _stack(model: Any, fallback: Any, catalog: Catalog) -> Any:
    """The full stack as a run builds it: usage, retry, a (healthy) fallback, a budget that never binds."""
    return build_stack(model, fallbacks=[fallback], catalog=catalog, sink=_ClearingSink(), run_id="bench",
                       budget_usd=1e9, budget_tokens=10**12, retry=RetryPolicy())


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def cases(fp: FakeProvider, catalog: Catalog) -> list[tuple[str, Call, Call]]:
    """(label, bare SDK call, same call through adapter + stack) for each format and mode."""
    settings = {"api_key": "bench-key", "max_retries": 0, "timeout": 600.0}
    a_client = anthropic.AsyncAnthropic(base_url=fp.url, **settings)
    o_client = openai.AsyncOpenAI(base_url=fp.url + "/v1", **settings)
    messages = [{"role": "user", "content": PROMPT}]
    request = MessagesRequest(model="bench", messages=[Message(role="user", content=PROMPT)], max_tokens=64)
    a_stack = _stack(AnthropicModel("claude-bench", base_url=fp.url, api_key="bench-key"),
                     AnthropicModel("claude-bench-fallback", base_url=fp.url, api_key="bench-key"), catalog)
    o_stack = _stack(OpenAIModel("gpt-bench", base_url=fp.url + "/v1", api_key="bench-key"),
                     OpenAIModel("gpt-bench-fallback", base_url=fp.url + "/v1", api_key="bench-key"), catalog)

    async def a_bare() -> Any:
        return await a_client.messages.create(model="claude-bench", messages=messages, max_tokens=64)

    async def a_bare_stream() -> None:
        await _drain(await a_client.messages.create(model="claude-bench", messages=messages, max_tokens=64,
                                                    stream=True))

    async def o_bare() -> Any:
        return await o_client.chat.completions.create(model="gpt-bench", messages=messages, max_tokens=64)

    async def o_bare_stream() -> None:
        await _drain(await o_client.chat.completions.create(model="gpt-bench", messages=messages, max_tokens=64,
                                                            stream=True, stream_options={"include_usage": True}))

    # No HTTP: the wrappers alone, over a model that answers from memory.
    answer = reply(STEP["text"])
    events = response_to_events(answer)

    async def mem_answer(_: MessagesRequest) -> Any:
        return answer

    class Memory:
        name = "scripted:bench"

        async def request(self, _: MessagesRequest) -> Any:
            return answer

        async def stream(self, _: MessagesRequest) -> Any:
            for event in events:
                yield event

        async def count_tokens(self, _: MessagesRequest) -> int:
            return 1

    memory = Memory()
    m_stack = _stack(memory, FunctionModel(mem_answer, name="scripted:spare"), catalog)
    return [
        ("anthropic plain", a_bare, lambda: a_stack.request(request)),
        ("anthropic stream", a_bare_stream, lambda: _drain(a_stack.stream(request))),
        ("openai plain", o_bare, lambda: o_stack.request(request)),
        ("openai stream", o_bare_stream, lambda: _drain(o_stack.stream(request))),
        ("no HTTP plain", lambda: memory.request(request), lambda: m_stack.request(request)),
        ("no HTTP stream", lambda: _drain(memory.stream(request)), lambda: _drain(m_stack.stream(request))),
    ]


async def measure(bare: Call, stacked: Call, calls: int, warmup: int) -> tuple[list[float], list[float]]:
    """Per-call milliseconds for each side, alternating calls."""
    for _ in range(warmup):
        await bare()
        await stacked()
    bare_ms, stack_ms = [], []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        await bare()
        t1 = clock()
        await stacked()
        t2 = clock()
        bare_ms.append((t1 - t0) * 1000)
        stack_ms.append((t2 - t1) * 1000)
    return bare_ms, stack_ms


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def main(calls: int, warmup: int, only: str | None) -> None:
    catalog = Catalog.load()
    with FakeProvider({name: STEP for name in ("claude-bench", "claude-bench-fallback", "gpt-bench",
                                                "gpt-bench-fallback")}) as fp:
        print(f"{calls} calls per side after {warmup} warm-up calls; milliseconds per call\n")
        head = (f"{'case':<18}{'bare med':>10}{'stack med':>11}{'added med':>11}"
                f"{'bare p99':>10}{'stack p99':>11}{'added p99':>11}")
        print(head)
        print("-" * len(head))
        for label, bare, stacked in cases(fp, catalog):
            if only and only not in label:
                continue
            bare_ms, stack_ms = await measure(bare, stacked, calls, warmup)
            bm, sm = statistics.median(bare_ms), statistics.median(stack_ms)
            bp, sp = p99(bare_ms), p99(stack_ms)
            print(f"{label:<18}{bm:>10.3f}{sm:>11.3f}{sm - bm:>+11.3f}{bp:>10.3f}{sp:>11.3f}{sp - bp:>+11.3f}")
        print("\ntarget: under +0.500 ms added at the median")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--only", help="run only the cases whose label contains this")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.warmup, args.only))
