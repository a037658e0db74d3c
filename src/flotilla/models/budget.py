"""A spending cap for a run: the ``Budget`` wrapper that refuses calls past what a shared ``Meter`` allows.

The meter is fed by the ``Usage`` wrappers (one around each concrete model),
so every real call, retries and fallbacks included, counts. ``Budget`` only
reads it: it decides, before a call starts, whether the call may start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..errors import BudgetExceeded
from ..messages import MessagesRequest, MessagesResponse, estimate_tokens
from ..protocols import Model
from .catalog import Catalog
from .meter import Meter
from .wrapper import WrapperModel, close_stream

__all__ = ["Budget", "Meter"]


class Budget(WrapperModel):
    """Refuses, with ``BudgetExceeded``, the call that would start over a USD or token cap.

    A call is refused when the meter is already at or over a cap, or when the
    request's estimated input alone would cross it (priced from ``catalog``
    for the model's name; without a catalog only the token estimate is used).
    A call that starts under the cap runs to its end: the cap bounds when work
    starts, not a response half-read. Concurrent calls that all start under
    the cap all run, so a run may end a few calls' worth over it.

    The meter only grows through ``Usage`` wrappers sharing it (``build_stack``
    wires them up); ``Budget`` itself never adds to it.
    """

    def __init__(self, model: Model, meter: Meter, max_usd: float | None = None,
                 max_tokens: int | None = None, *, catalog: Catalog | None = None) -> None:
        super().__init__(model)
        self.meter = meter
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.catalog = catalog

    def check(self, request: MessagesRequest) -> None:
        """Raises ``BudgetExceeded`` when ``request`` may not start."""
        if self.max_usd is None and self.max_tokens is None:
            return
        meter = self.meter
        if (self.max_usd is not None and meter.usd >= self.max_usd) or (
                self.max_tokens is not None and meter.tokens >= self.max_tokens):
            raise self._refusal("")
        info = self.catalog.info(self.model.name) if self.catalog is not None else None
        if info is not None and self._far_from_caps(info.context_window, info.input):
            return  # no request that fits the model's context could cross a cap: skip the estimate
        estimate = estimate_tokens(request)
        if self.max_tokens is not None and meter.tokens + estimate > self.max_tokens:
            raise self._refusal(f"this request's input alone is estimated at {estimate} tokens")
        if self.max_usd is not None and info is not None:
            cost = estimate * info.input / 1_000_000
            if meter.usd + cost > self.max_usd:
                raise self._refusal(f"this request's input alone is estimated at ${cost:.4f} "
                                    f"({estimate} tokens to {self.model.name})")

    def _far_from_caps(self, context_window: int, input_price: float) -> bool:
        # Estimating serialises the whole conversation; most calls are nowhere near a cap.
        m = self.meter
        if self.max_tokens is not None and self.max_tokens - m.tokens <= context_window:
            return False
        return self.max_usd is None or self.max_usd - m.usd > context_window * input_price / 1_000_000

    def _refusal(self, why: str) -> BudgetExceeded:
        m = self.meter
        exc = BudgetExceeded(m.usd, self.max_usd, m.tokens, self.max_tokens)
        fix = "raise the budget cap, or start a new run"
        exc.args = (f"{exc}{'; ' + why if why else ''}. Fix: {fix}",)
        return exc

    async def request(self, request: MessagesRequest, **options: Any) -> MessagesResponse:
        self.check(request)
        return await self.model.request(request, **options)

    async def stream(self, request: MessagesRequest, **options: Any) -> AsyncIterator[Any]:
        self.check(request)
        inner = self.model.stream(request, **options)
        try:
            async for event in inner:
                yield event
        finally:
            await close_stream(inner)
