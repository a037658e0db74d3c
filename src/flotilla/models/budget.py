"""A spending cap for a run: the ``Budget`` wrapper that lets a call start only while a shared ``Meter`` allows.

The meter is fed by the ``Usage`` wrappers (one around each concrete model),
so every real call, retries and fallbacks included, counts. ``Budget`` never
adds to it: before a call it reserves a bound on what the call may cost, and
releases it when the call ends, so concurrent calls see each other's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BudgetExceeded
from ..messages import MessagesRequest, MessagesResponse, estimate_tokens
from ..protocols import Model
from .catalog import Catalog
from .meter import Meter
from .wrapper import WrapperModel, close_stream

__all__ = ["Budget", "Meter"]

FAR = 10
"""With room for this many worst-case calls (a full context window in, ``max_tokens`` out) left
under a cap, a call reserves the worst case instead of estimating its input: estimating
serialises the whole conversation, and most calls are nowhere near a cap. Nearer the cap the
estimate takes over, so over-reserving never holds other calls back for long."""


class Budget(WrapperModel):
    """Lets a call start only while the run is under its USD and token caps, counting calls in flight.

    Before a call, ``Budget`` reserves on the shared meter a bound on what it
    may cost: its estimated input at the input price (or the cache-write
    price, when higher) plus ``max_tokens`` at the output price, for the
    dearest model of ``priced_as`` (the stack passes its fallback chain). A
    call starts only when the spend plus every other call's reservation is
    under the cap; when it ends (answer, error, cancellation, a stream closed
    early) the reservation is released and the real cost, added by ``Usage``,
    stays. So however many calls run at once, a run ends at most one call over
    its cap, as a lone run does.

    A call that cannot start while others are in flight waits for one of them
    to end (its real cost may be far below its bound); with none in flight it
    is refused with ``BudgetExceeded``: when the meter is at or over a cap, or
    when the request's estimated input alone would cross it. An unpriced
    model (no catalog entry) reserves no USD: its calls are only checked
    against what has been spent.
    """

    def __init__(self, model: Model, meter: Meter, max_usd: float | None = None,
                 max_tokens: int | None = None, *, catalog: Catalog | None = None,
                 priced_as: Sequence[str] = ()) -> None:
        super().__init__(model)
        self.meter = meter
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.catalog = catalog
        self.priced_as = list(priced_as)

    async def request(self, request: MessagesRequest, **options: Any) -> MessagesResponse:
        ticket = await self.admit(request)
        try:
            return await self.model.request(request, **options)
        finally:
            self._release(ticket)

    async def stream(self, request: MessagesRequest, **options: Any) -> AsyncIterator[Any]:
        ticket = await self.admit(request)
        try:
            inner = self.model.stream(request, **options)
            try:
                async for event in inner:
                    yield event
            finally:
                await close_stream(inner)  # Usage below records the real cost before the release
        finally:
            self._release(ticket)

    async def admit(self, request: MessagesRequest) -> int | None:
        """Waits until ``request`` may start and reserves its bound; returns the ticket (None: no cap).

        Raises ``BudgetExceeded`` when it may not start and no call in flight could make room."""
        if self.max_usd is None and self.max_tokens is None:
            return None
        bound = self._bound(request)
        meter = self.meter
        while True:
            with meter.lock:  # deciding and reserving are one step, whatever else shares the meter
                why = self._why_not(bound)
                if why is None:
                    return meter.reserve(bound.usd, bound.tokens)
                seen = meter.releases
                busy = meter.in_flight > 0
            if why == "" or not busy:
                raise self._refusal(why)
            await meter.released(since=seen)

    def _release(self, ticket: int | None) -> None:
        if ticket is not None:
            self.meter.release(ticket)

    def _bound(self, request: MessagesRequest) -> _Bound:
        """What ``request`` may cost at most, and what its input alone costs."""
        infos = [i for n in (self.priced_as or [self.model.name])
                 if self.catalog is not None and (i := self.catalog.info(n)) is not None]
        input_price = max((max(i.input, i.cache_write) for i in infos), default=0.0) / 1_000_000
        output_price = max((i.output for i in infos), default=0.0) / 1_000_000
        if not infos and self.max_tokens is None:
            return _Bound(0.0, 0, 0.0, 0, None)  # unpriced under a USD cap: only the spend is checked
        window = max((i.context_window for i in infos), default=0)
        out = request.max_tokens
        worst_usd, worst_tokens = window * input_price + out * output_price, window + out
        m = self.meter
        if infos and (self.max_tokens is None or self.max_tokens - m.tokens - m.reserved_tokens > FAR * worst_tokens) \
                and (self.max_usd is None or self.max_usd - m.usd - m.reserved_usd > FAR * worst_usd):
            return _Bound(worst_usd, worst_tokens, 0.0, 0, None)
        estimate = estimate_tokens(request)
        return _Bound(estimate * input_price + out * output_price, estimate + out,
                      estimate * input_price, estimate, estimate)

    def _why_not(self, bound: _Bound) -> str | None:
        """None when the call may start now; "" when a cap is reached; else why it cannot start yet.

        A call starts only when the spend plus the others' reservations is under
        the cap and its own input fits; with nothing in flight, the reason is the refusal's."""
        m = self.meter
        if (self.max_usd is not None and m.usd >= self.max_usd) or (
                self.max_tokens is not None and m.tokens >= self.max_tokens):
            return ""
        if self.max_tokens is not None and _blocked(m.tokens, m.reserved_tokens, bound.input_tokens, self.max_tokens):
            return f"this request's input alone is estimated at {bound.estimate} tokens"
        if self.max_usd is not None and _blocked(m.usd, m.reserved_usd, bound.input_usd, self.max_usd):
            return (f"this request's input alone is estimated at ${bound.input_usd:.4f} "
                    f"({bound.estimate} tokens to {self.model.name})")
        return None

    def _refusal(self, why: str) -> BudgetExceeded:
        m = self.meter
        exc = BudgetExceeded(m.usd, self.max_usd, m.tokens, self.max_tokens)
        fix = "raise the budget cap, or start a new run"
        exc.args = (f"{exc}{'; ' + why if why else ''}. Fix: {fix}",)
        return exc


def _blocked(spent: float, reserved: float, own_input: float, cap: float) -> bool:
    return spent + reserved >= cap or spent + reserved + own_input > cap


@dataclass(frozen=True)
class _Bound:
    usd: float
    """The most the call may cost: its input and ``max_tokens`` of output, at the dearest price."""
    tokens: int
    input_usd: float
    input_tokens: int
    estimate: int | None
    """The request's estimated input tokens; None when it was far enough from the caps not to estimate."""
