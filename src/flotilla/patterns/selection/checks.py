"""``checks`` and ``checks+judge``: the ranking decides (``_ranking.rank``), with or without judge scores."""

from __future__ import annotations

import asyncio

from .._ranking import rank
from ._types import Candidate, Judge, Selection


def _by_ranking(strategy: str, candidates: list[Candidate]) -> Selection:
    ranked = rank([c.attempt for c in candidates])
    if not ranked or not ranked[0].eligible:
        return Selection(strategy, None, "no attempt passed its check")
    top = ranked[0]
    if len(ranked) == 1 or not ranked[1].eligible:
        return Selection(strategy, top.name, "the only attempt whose check passed")
    return Selection(strategy, top.name, top.reason)


async def select_checks(candidates: list[Candidate], judge: Judge | None = None) -> Selection:
    """The first by the ranking: a passing check, then the smaller diff, the lower cost, the faster."""
    return _by_ranking("checks", candidates)


async def select_checks_judge(candidates: list[Candidate], judge: Judge | None) -> Selection:
    """A judge scores every passing attempt (concurrently); the ranking then puts the score before size."""
    assert judge is not None, "checks+judge needs a judge"
    passing = [c for c in candidates if c.attempt.eligible]
    verdicts = await asyncio.gather(*(judge.score(c) for c in passing))
    for c, v in zip(passing, verdicts):
        c.attempt.judge_score, c.attempt.judge_reasons = v.score, v.reasons
    selection = _by_ranking("checks+judge", candidates)
    selection.calls = sum(v.calls for v in verdicts)
    selection.cost_usd = sum(v.cost_usd for v in verdicts)
    selection.scores = {c.name: [v.score, v.reasons] for c, v in zip(passing, verdicts)}
    selection.log = [f"{c.name}: {'no score' if v.score is None else f'{v.score:g}/10'} — {v.reasons}"
                     for c, v in zip(passing, verdicts)]
    return selection
