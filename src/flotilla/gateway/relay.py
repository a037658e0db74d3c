"""What one relayed call carries between the proxy and a backend's fast path, and what it produced.

The proxy hands each backend a ``Relay``: the request's own ``msg_…`` id (a backend
that repeats ids cannot confuse a client), the client's JSON body for a
pass-through, and a list for translation warnings. The backend fills in the
``Tally``: the upstream's usage when it says, and what was relayed (deltas and
their characters) for when it never does: a stream the client left, or one cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..messages import MessagesRequest, Usage, estimate_tokens


class Tally:
    """Usage as the upstream reports it (cumulative, possibly partial) plus what was relayed."""

    __slots__ = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                 "chars", "deltas")

    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = 0
        self.cache_read_input_tokens = self.cache_creation_input_tokens = 0
        self.chars = self.deltas = 0

    def take(self, usage: Any) -> None:
        """Takes the non-zero counts of a usage object or dict (stream events carry partial counts)."""
        if usage is None:
            return
        get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, 0)
        self.input_tokens = get("input_tokens") or self.input_tokens
        self.output_tokens = get("output_tokens") or self.output_tokens
        self.cache_read_input_tokens = get("cache_read_input_tokens") or self.cache_read_input_tokens
        self.cache_creation_input_tokens = get("cache_creation_input_tokens") or self.cache_creation_input_tokens

    def relayed(self, text: str) -> None:
        """Counts one content delta the client was sent."""
        self.deltas += 1
        self.chars += len(text)

    def usage(self) -> Usage:
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                     cache_read_input_tokens=self.cache_read_input_tokens,
                     cache_creation_input_tokens=self.cache_creation_input_tokens)

    def estimate(self, request: MessagesRequest) -> Usage:
        """The usage to charge when the upstream's final count never came: its input count if it gave
        one (else a local estimate), and at least a token per delta relayed (or four characters)."""
        usage = self.usage()
        if not (usage.input_tokens or usage.cache_read_input_tokens or usage.cache_creation_input_tokens):
            usage.input_tokens = estimate_tokens(request)
        usage.output_tokens = max(usage.output_tokens, self.deltas, -(-self.chars // 4))
        return usage


@dataclass
class Relay:
    """One call's relay state (see the module docstring)."""

    message_id: str
    tally: Tally = field(default_factory=Tally)
    body: dict[str, Any] | None = None
    """The client's JSON body, for backends that pass it on as it came."""
    headers: dict[str, str] | None = None
    """Client headers passed on (``anthropic-beta``, ``anthropic-version``) to Anthropic backends."""
    warnings: list[str] = field(default_factory=list)
    """What translation dropped or changed, for the ``x-flotilla-warning`` header."""
    complete: bool = False
    """Whether the upstream's final usage (or message end) arrived."""


def count_delta(tally: Tally, delta: dict[str, Any]) -> None:
    """Counts a canonical content delta's text (text, tool arguments or thinking)."""
    tally.relayed(delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")
