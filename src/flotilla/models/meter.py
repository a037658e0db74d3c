"""What a run has spent, and what its calls in flight may still spend: one ``Meter`` per run (or race).

The ``Usage`` wrappers add each call's real cost to it; ``Budget`` holds a
reservation on it for each call in flight (a bound on what the call can
cost) and releases it when the call ends, so that concurrent calls see each
other before they start. It lives apart from both so that each can import it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..messages import Usage as TokenUsage


class Meter:
    """What one run has spent so far, in USD and tokens.

    One meter is shared by every model of a run (executor, advisor,
    subagents). ``add`` does no awaiting, so concurrent asyncio tasks cannot
    interleave inside it; the lock also makes it safe from other threads.

    ``reserve``/``release`` hold a bound for each call in flight;
    ``reserved_usd``/``reserved_tokens`` are their sum. ``lock`` is re-entrant,
    so ``Budget`` can decide and reserve in one step under it.

    A resumed run starts its meter from what it spent before the crash:
    ``Meter(usd=0.15, calls=3)``, or ``Meter.seeded(rows)`` from the store's
    usage rows, so that its cap applies to one total.
    """

    def __init__(self, usd: float = 0.0, *, input_tokens: int = 0, output_tokens: int = 0,
                 cache_read_tokens: int = 0, cache_write_tokens: int = 0, calls: int = 0) -> None:
        self.usd = float(usd)
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cache_read_tokens = cache_read_tokens
        self.cache_write_tokens = cache_write_tokens
        self.calls = calls
        self.lock = threading.RLock()
        self._held: dict[int, tuple[float, int]] = {}
        self._tickets = itertools.count(1)
        self.releases = 0
        """How many reservations have been released: ``released(since=…)`` waits for it to move."""
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @classmethod
    def seeded(cls, rows: Iterable[Mapping[str, Any]]) -> Meter:
        """A meter that starts from earlier spend: rows shaped like ``RunStore.usage()``'s
        (``cost_usd``, ``calls``, ``input_tokens``, ``output_tokens``, ``cache_read_tokens``,
        ``cache_write_tokens``; a missing or null field counts as zero)."""
        meter = cls()
        for row in rows:
            meter.usd += float(row.get("cost_usd") or 0.0)
            meter.calls += int(row.get("calls") or 0)
            meter.input_tokens += int(row.get("input_tokens") or 0)
            meter.output_tokens += int(row.get("output_tokens") or 0)
            meter.cache_read_tokens += int(row.get("cache_read_tokens") or 0)
            meter.cache_write_tokens += int(row.get("cache_write_tokens") or 0)
        return meter

    def add(self, usd: float, usage: TokenUsage | None = None) -> None:
        """Adds one call's cost and tokens."""
        with self.lock:
            self.usd += usd
            self.calls += 1
            if usage is not None:
                self.input_tokens += usage.input_tokens
                self.output_tokens += usage.output_tokens
                self.cache_read_tokens += usage.cache_read_input_tokens
                self.cache_write_tokens += usage.cache_creation_input_tokens

    def reserve(self, usd: float, tokens: int) -> int:
        """Holds ``usd`` and ``tokens`` for a call about to start; returns the ticket to ``release``."""
        with self.lock:
            ticket = next(self._tickets)
            self._held[ticket] = (usd, tokens)
            return ticket

    def release(self, ticket: int) -> None:
        """Drops a reservation (the call has ended; its real cost is ``add``-ed); a second release is a no-op."""
        with self.lock:
            if self._held.pop(ticket, None) is None:
                return
            self.releases += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    async def released(self, since: int) -> None:
        """Returns once a reservation has been released after ``releases`` was ``since`` (at once if one was)."""
        loop = asyncio.get_running_loop()
        with self.lock:
            if self.releases != since:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        finally:
            with self.lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))

    @property
    def in_flight(self) -> int:
        """Calls holding a reservation."""
        return len(self._held)

    @property
    def reserved_usd(self) -> float:
        with self.lock:
            return sum(usd for usd, _ in self._held.values())

    @property
    def reserved_tokens(self) -> int:
        with self.lock:
            return sum(tokens for _, tokens in self._held.values())

    @property
    def tokens(self) -> int:
        """Every token processed: input, output, cache reads and cache writes."""
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __repr__(self) -> str:
        return (f"Meter(usd={self.usd:.6f}, tokens={self.tokens}, calls={self.calls}, "
                f"in_flight={self.in_flight}, reserved_usd={self.reserved_usd:.6f})")


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
