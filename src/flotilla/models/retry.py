"""Retry: exponential backoff with jitter, honouring ``retry-after``, bounded in attempts and in wait.

Only errors a provider marks ``retryable`` (timeouts, connection errors, 408,
409, 429, 5xx, 529) are retried. A stream is retried only until it has
yielded its first event: after that, a retry would repeat output the caller
has already seen.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ProviderError
from ..messages import MessagesRequest, MessagesResponse
from ..protocols import Model
from .wrapper import WrapperModel, close_stream


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. The defaults follow the official Anthropic SDK's."""

    max_attempts: int = 4
    """Attempts in all, the first included."""
    base_delay: float = 0.5
    """Seconds before the first retry; doubled for each one after."""
    max_delay: float = 8.0
    """No backoff step waits longer than this."""
    jitter: float = 0.25
    """Each backoff step is shortened by up to this fraction, at random, so clients do not retry in step."""
    max_retry_after: float = 60.0
    """A server's ``retry-after`` is honoured up to this many seconds."""
    max_total_wait: float = 120.0
    """Give up rather than wait longer than this in all."""


def retry_delay(policy: RetryPolicy, attempt: int, retry_after: float | None, rand: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    A server's ``retry_after`` wins (capped at ``policy.max_retry_after``);
    otherwise ``base_delay * 2**(attempt-1)`` capped at ``max_delay``, less a
    jitter of ``policy.jitter * rand`` of it (``rand`` in [0, 1)).
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, policy.max_retry_after)
    step = min(policy.base_delay * 2 ** (attempt - 1), policy.max_delay)
    return step * (1 - policy.jitter * rand)


class Retry(WrapperModel):
    """Retries ``model``'s retryable failures with backoff.

    ``hand_over(error)`` names errors not to retry here because something
    outside will handle them better (a ``Fallback`` with a next model ready).
    ``sleep`` and ``rand`` are injectable for speed and determinism.
    """

    def __init__(self, model: Model, policy: RetryPolicy | None = None, *,
                 hand_over: Callable[[ProviderError], bool] | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        super().__init__(model)
        self.policy = policy or RetryPolicy()
        self.hand_over = hand_over
        self._sleep = sleep
        self._rand = rand

    def _delay(self, error: ProviderError, attempt: int, waited: float) -> float | None:
        """The wait before the next attempt, or None to give up and raise ``error``."""
        if not error.retryable or attempt >= self.policy.max_attempts:
            return None
        if self.hand_over is not None and self.hand_over(error):
            return None
        delay = retry_delay(self.policy, attempt, error.retry_after, self._rand())
        if waited + delay > self.policy.max_total_wait:
            return None
        return delay

    async def request(self, request: MessagesRequest, **options: Any) -> MessagesResponse:
        return await self._retrying(lambda: self.model.request(request, **options))

    async def _retrying(self, call: Callable[[], Awaitable[Any]]) -> Any:
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            try:
                return await call()
            except ProviderError as error:
                delay = self._delay(error, attempt, waited)
                if delay is None:
                    raise
            waited += delay
            await self._sleep(delay)

    async def stream(self, request: MessagesRequest, **options: Any) -> AsyncIterator[Any]:
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            started = False
            inner = self.model.stream(request, **options)
            try:
                async for event in inner:
                    started = True
                    yield event
                return
            except ProviderError as error:
                delay = None if started else self._delay(error, attempt, waited)
                if delay is None:
                    raise
            finally:
                await close_stream(inner)
            waited += delay
            await self._sleep(delay)

    async def count_tokens(self, request: MessagesRequest, **options: Any) -> int:
        return await self._retrying(lambda: self.model.count_tokens(request, **options))
