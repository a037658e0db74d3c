"""How a race picks its winner from its attempts' typed results: one small module per strategy.

- ``checks``: today's ranking (check passed, smaller diff, cheaper, faster); no model calls.
- ``checks+judge``: a judge scores each passing diff 0–10, then the ranking (score before size).
- ``pairwise``: a judge compares passing attempts two at a time on their summaries and diffs, in a
  knock-out tournament, so it scales past what one prompt holds (k contenders: k − 1 matches).
- ``vote``: passing attempts whose diffs are equal after normalising whitespace form clusters; the
  biggest cluster wins (majority voting over code); no model calls.

Each strategy is ``async select(candidates, judge) -> Selection`` over ``Candidate`` (an attempt's result
with its diff and summary) and returns the winner, why, and what selecting spent. The race records the
``Selection`` in its result; the table and ``flotilla show`` print it.
"""

from __future__ import annotations

from ._types import Candidate, Judge, Selection
from .checks import select_checks, select_checks_judge
from .pairwise import select_pairwise
from .vote import normalise_diff, select_vote

STRATEGIES = {"checks": select_checks, "checks+judge": select_checks_judge, "pairwise": select_pairwise,
              "vote": select_vote}
NEEDS_JUDGE = ("checks+judge", "pairwise")

__all__ = ["NEEDS_JUDGE", "STRATEGIES", "Candidate", "Judge", "Selection", "normalise_diff", "select",
           "select_checks", "select_checks_judge", "select_pairwise", "select_vote"]


async def select(strategy: str, candidates: list[Candidate], judge: Judge | None = None) -> Selection:
    """The winner by ``strategy`` (one of ``STRATEGIES``)."""
    return await STRATEGIES[strategy](candidates, judge)
