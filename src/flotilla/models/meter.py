"""What a run has spent: one ``Meter`` shared by every model stack of a run (or of a whole race).

The ``Usage`` wrappers add to it; ``Budget`` reads it. It lives apart from
both so that each can import it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..messages import Usage as TokenUsage


class Meter:
    """What one run has spent so far, in USD and tokens.

    One meter is shared by every model of a run (executor, advisor,
    subagents). ``add`` does no awaiting, so concurrent asyncio tasks cannot
    interleave inside it; the lock also makes it safe from other threads.

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
        self.lock = threading.Lock()

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

    @property
    def tokens(self) -> int:
        """Every token processed: input, output, cache reads and cache writes."""
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __repr__(self) -> str:
        return f"Meter(usd={self.usd:.6f}, tokens={self.tokens}, calls={self.calls})"
