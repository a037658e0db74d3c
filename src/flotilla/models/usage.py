"""Usage accounting: every call a model makes becomes a ``ModelCalled`` event.

Wrap each concrete model (innermost), so that every real call is recorded:
retries and fallback attempts included, failures included, plain or streamed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..events import ModelCalled
from ..messages import ContentBlockDelta, MessageDelta, MessagesRequest, MessagesResponse, MessageStart, MessageStop
from ..messages import Usage as TokenUsage
from ..protocols import EventSink, Model
from .catalog import Catalog
from .meter import Meter
from .wrapper import WrapperModel, close_stream

__all__ = ["Usage", "close_stream"]


class Usage(WrapperModel):
    """Records each call of ``model`` as a ``ModelCalled`` event and adds its cost to ``meter``.

    Cost comes from ``catalog`` for the model's ``provider:model`` name,
    cache reads and writes priced apart. Streams also record the time to
    the first token (the first content delta).
    """

    def __init__(self, model: Model, catalog: Catalog, sink: EventSink | None = None,
                 run_id: str | None = None, role: str = "executor", meter: Meter | None = None) -> None:
        super().__init__(model)
        self.catalog = catalog
        self.sink = sink
        self.run_id = run_id
        self.role = role
        self.meter = meter
        self.provider, _, self.model_id = model.name.partition(":")
        self._info = catalog.info(model.name)  # looked up once: the name does not change

    async def request(self, request: MessagesRequest, **options: Any) -> MessagesResponse:
        start = time.perf_counter()
        try:
            response = await self.model.request(request, **options)
        except BaseException as exc:
            self._record(None, start, None, _describe(exc))
            raise
        self._record(response.usage, start, None, None)
        return response

    async def stream(self, request: MessagesRequest, **options: Any) -> AsyncIterator[Any]:
        start = time.perf_counter()
        first: float | None = None
        usage = TokenUsage()
        ended = False
        error: str | None = None
        inner = self.model.stream(request, **options)
        try:
            async for event in inner:
                if first is None and type(event) is ContentBlockDelta:
                    first = time.perf_counter()
                elif type(event) is MessageStart:
                    usage = event.message.usage.model_copy()
                elif type(event) is MessageDelta:
                    _fold(usage, event.usage)
                elif type(event) is MessageStop:
                    ended = True
                yield event
        except BaseException as exc:
            # GeneratorExit: the caller stopped reading; fine once the message was complete.
            if not (ended and isinstance(exc, GeneratorExit)):
                error = _describe(exc)
            raise
        finally:
            await close_stream(inner)
            ttft = None if first is None else (first - start) * 1000
            self._record(usage, start, ttft, error)

    def _record(self, usage: TokenUsage | None, start: float, ttft_ms: float | None, error: str | None) -> None:
        latency_ms = (time.perf_counter() - start) * 1000
        cost = self._info.cost(usage) if usage is not None and self._info is not None else 0.0
        if self.meter is not None:
            self.meter.add(cost, usage)
        if self.sink is None:
            return
        u = usage or TokenUsage()
        self.sink.emit(ModelCalled(
            run_id=self.run_id, provider=self.provider, model=self.model_id,
            input_tokens=u.input_tokens, output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_input_tokens, cache_write_tokens=u.cache_creation_input_tokens,
            cost_usd=cost, latency_ms=latency_ms, ttft_ms=ttft_ms, role=self.role, error=error,
        ))


def _fold(total: TokenUsage, delta: TokenUsage) -> None:
    """Anthropic's ``message_delta`` carries cumulative counts; a zero means "unchanged"."""
    total.output_tokens = delta.output_tokens or total.output_tokens
    total.input_tokens = delta.input_tokens or total.input_tokens
    total.cache_read_input_tokens = delta.cache_read_input_tokens or total.cache_read_input_tokens
    total.cache_creation_input_tokens = delta.cache_creation_input_tokens or total.cache_creation_input_tokens


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit):
        return "stream closed by the caller before it ended"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def format_cost(usd: float | None, *, tokens: int = 0, metered: bool = True, digits: int = 4) -> str:
    """A USD amount for a person: ``$0.0123``, or ``—`` when it is not known, never ``$0.0000``.

    It is not known when there is no amount, when nothing metered it (an external agent CLI reports
    no cost), or when tokens were spent but cost nothing (a model the catalog has no price for).
    """
    if usd is None or not metered or (tokens and not usd):
        return "—"
    return f"${usd:.{digits}f}"


def rows_cost(rows: list[dict[str, Any]], catalog: Any) -> float | None:
    """The USD cost of a run store's usage rows, or None when a row's model has no price in the
    catalog (its recorded cost of 0 means "not known", not "free")."""
    total = 0.0
    for row in rows:
        tokens = (row.get("input_tokens") or 0) + (row.get("output_tokens") or 0)
        if tokens and catalog.info(f"{row['provider']}:{row['model']}") is None:
            return None
        total += row.get("cost_usd") or 0.0
    return total
