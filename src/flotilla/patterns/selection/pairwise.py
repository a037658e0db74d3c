"""``pairwise``: a knock-out tournament among the passing attempts, a judge deciding each match.

Comparing two attempts at a time keeps each prompt to two summaries and two diffs however many attempts
there are (k contenders take k − 1 matches, in ceil(log2 k) rounds run concurrently). Seeding follows the
checks ranking, so a bye goes to the best-ranked attempt, and a match the judge cannot decide goes to the
better-ranked attempt, said in the log. Pairwise judging of attempt summaries took one model from 70.9% to
77.6% on SWE-bench Verified (arXiv 2604.16529).
"""

from __future__ import annotations

import asyncio

from .._ranking import rank
from ._types import Candidate, Judge, Match, Selection


async def select_pairwise(candidates: list[Candidate], judge: Judge | None) -> Selection:
    assert judge is not None, "pairwise needs a judge"
    order = {a.name: i for i, a in enumerate(rank([c.attempt for c in candidates]))}
    field = sorted((c for c in candidates if c.attempt.eligible), key=lambda c: order[c.name])
    selection = Selection("pairwise", None, "no attempt passed its check")
    if not field:
        return selection
    if len(field) == 1:
        selection.winner, selection.reason = field[0].name, "the only attempt whose check passed"
        return selection
    entrants, round_no = len(field), 0
    while len(field) > 1:
        round_no += 1
        pairs = [(field[i], field[i + 1]) for i in range(0, len(field) - 1, 2)]
        bye = [field[-1]] if len(field) % 2 else []
        played = await asyncio.gather(*(_play(judge, a, b, selection) for a, b in pairs))
        for match in played:
            selection.log.append(f"round {round_no}: {match.first} vs {match.second} → {match.winner}: {match.reason}")
        for c in bye:
            selection.log.append(f"round {round_no}: {c.name} has a bye")
        winners = {m.winner for m in played}
        field = [c for a, b in pairs for c in (a, b) if c.name in winners] + bye
    selection.winner = field[0].name
    final = next(line for line in reversed(selection.log) if " vs " in line)
    selection.reason = (f"won a tournament of {entrants} passing attempts in {round_no} "
                        f"round{'s' if round_no > 1 else ''}; final: {final.split(': ', 1)[1]}")
    return selection


async def _play(judge: Judge, first: Candidate, second: Candidate, selection: Selection) -> Match:
    better, reason, cost, calls = await judge.compare(first, second)
    selection.calls += calls
    selection.cost_usd += cost
    if better is None:
        return Match(first.name, second.name, first.name, f"the judge gave no verdict ({reason}); "
                                                           f"{first.name} goes through on the checks ranking")
    return Match(first.name, second.name, (first, second)[better].name, reason)
