"""Fallback: an ordered chain of models tried in turn when one is overloaded or unavailable.

It moves on for overload (529), 5xx, timeouts and connection errors (a
``ProviderError`` with no status), and for 429 only when asked to. It never
moves on for 400/401/403/404 or any other 4xx: the next model would get the
same bad request or the same bad key. Once a stream has yielded its first
event it never switches (the caller has already seen output).

Like Claude Code's fallback, it lasts the turn: once a later model has
answered, the chain stays on it until ``reset()`` starts a new turn. The
agent loop resets before each model call, so the next turn tries the
primary again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..errors import ProviderError, UserError
from ..events import FallbackUsed
from ..messages import MessagesRequest, MessagesResponse
from ..protocols import EventSink, Model
from .wrapper import close_stream

MAX_FALLBACKS = 3


def falls_back(error: ProviderError, *, on_rate_limit: bool = False) -> bool:
    """Whether ``error`` should send the call on to the next model in a chain."""
    status = error.status
    if error.overloaded:
        return True
    if status is None:  # timeouts and connection errors; not an unknown error we failed to classify
        return error.retryable
    if status == 429:
        return on_rate_limit
    return status >= 500 or status == 408


class Fallback:
    """Tries ``primary``, then each of ``fallbacks`` (at most three), on errors ``falls_back`` accepts.

    Emits a ``FallbackUsed`` event each time it moves on. When every model
    fails, the last error is raised with the chain named in its message.
    """

    def __init__(self, primary: Model, fallbacks: Sequence[Model] = (), *, on_rate_limit: bool = False,
                 sink: EventSink | None = None, run_id: str | None = None) -> None:
        if len(fallbacks) > MAX_FALLBACKS:
            names = ", ".join(m.name for m in fallbacks)
            raise UserError(f"at most {MAX_FALLBACKS} fallback models may follow the primary; got "
                            f"{len(fallbacks)}: {names}. Fix: keep the {MAX_FALLBACKS} you want most")
        self.models: list[Model] = [primary, *fallbacks]
        self.on_rate_limit = on_rate_limit
        self.sink = sink
        self.run_id = run_id
        self.active = 0
        """Index of the model the turn is on: 0 until a fallback has answered."""

    @property
    def name(self) -> str:
        return self.models[self.active].name

    def reset(self) -> None:
        """Starts a new turn: the next call tries the primary first again."""
        self.active = 0
        for model in self.models:
            reset = getattr(model, "reset", None)
            if reset is not None:
                reset()

    def falls_back(self, error: ProviderError) -> bool:
        """Whether this chain moves on from ``error``."""
        return falls_back(error, on_rate_limit=self.on_rate_limit)

    def _moving_on(self, index: int, error: Exception) -> bool:
        """Decides whether to try the model after ``index``; emits ``FallbackUsed`` if so."""
        if index + 1 >= len(self.models) or not isinstance(error, ProviderError) or not self.falls_back(error):
            return False
        if self.sink is not None:
            self.sink.emit(FallbackUsed(run_id=self.run_id, from_model=self.models[index].name,
                                        to_model=self.models[index + 1].name, reason=str(error)))
        return True

    def _annotate(self, error: Exception, start: int, end: int) -> None:
        if end > start:
            chain = " → ".join(m.name for m in self.models[start:end + 1])
            error.args = (f"{error} (fallback chain tried: {chain})",)

    async def request(self, request: MessagesRequest, **options: Any) -> MessagesResponse:
        start = self.active
        for index in range(start, len(self.models)):
            try:
                response = await self.models[index].request(request, **options)
            except ProviderError as error:
                if self._moving_on(index, error):
                    continue
                self._annotate(error, start, index)
                raise
            self.active = index
            return response
        raise AssertionError("unreachable: the last model either answers or raises")

    async def stream(self, request: MessagesRequest, **options: Any) -> AsyncIterator[Any]:
        start = self.active
        for index in range(start, len(self.models)):
            started = False
            inner = self.models[index].stream(request, **options)
            try:
                async for event in inner:
                    if not started:
                        started = True
                        self.active = index  # it answered: the rest of the turn stays here
                    yield event
                return
            except ProviderError as error:
                if not started and self._moving_on(index, error):
                    continue
                self._annotate(error, start, index)
                raise
            finally:
                await close_stream(inner)

    async def count_tokens(self, request: MessagesRequest, **options: Any) -> int:
        # Counting is advice, not an answer: it falls back alike but does not move the turn.
        for index in range(self.active, len(self.models)):
            try:
                return await self.models[index].count_tokens(request, **options)
            except ProviderError as error:
                if not self._moving_on(index, error):
                    raise
        raise AssertionError("unreachable: the last model either answers or raises")
