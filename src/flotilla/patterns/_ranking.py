"""Ranking a race's attempts: checks pass, then judge score, then smaller diff, then lower cost, then faster.

Each place gets a reason: the first criterion on which it beat the attempt
below it (or, for the last place, what held it back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Rankable(Protocol):
    name: str
    eligible: bool
    judge_score: float | None
    lines_changed: int
    cost_usd: float | None
    seconds: float


def _key(a: Any) -> tuple[Any, ...]:
    return (not a.eligible, -(a.judge_score if a.judge_score is not None else -1.0),
            a.lines_changed, round(a.cost_usd or 0.0, 6), round(a.seconds, 1), a.name)


def _why(a: Any, b: Any) -> str:
    """Why ``a`` placed above ``b``."""
    if a.eligible != b.eligible:
        return f"its check passed and {b.name}'s did not"
    if a.judge_score != b.judge_score:
        if b.judge_score is None:
            return f"judge scored it {a.judge_score:g}; {b.name} got no score"
        return f"judge scored it {a.judge_score:g} against {b.name}'s {b.judge_score:g}"
    if a.lines_changed != b.lines_changed:
        return f"smaller diff ({a.lines_changed} lines against {b.name}'s {b.lines_changed})"
    if a.cost_usd is not None and b.cost_usd is not None and round(a.cost_usd, 6) != round(b.cost_usd, 6):
        return f"cheaper (${a.cost_usd:.4f} against {b.name}'s ${b.cost_usd:.4f})"
    if round(a.seconds, 1) != round(b.seconds, 1):
        return f"faster ({a.seconds:.1f}s against {b.name}'s {b.seconds:.1f}s)"
    return f"tied with {b.name}; placed by name"


def _last(a: Any) -> str:
    if not a.eligible:
        return getattr(a, "why_not", "") or "its check did not pass"
    return "last of the attempts that passed"


def rank(attempts: Sequence[Any]) -> list[Any]:
    """The attempts best first, each given ``place`` (1-based) and ``reason``."""
    ordered = sorted(attempts, key=_key)
    for i, a in enumerate(ordered):
        a.place = i + 1
        if i + 1 < len(ordered):
            a.reason = _why(a, ordered[i + 1])
        else:
            a.reason = _last(a) if len(ordered) > 1 or not a.eligible else "the only attempt; its check passed"
        if not a.eligible and i + 1 < len(ordered):
            a.reason = f"{_last(a)}; {a.reason}"
    return ordered
