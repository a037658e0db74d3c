"""The race's selection step: its attempts as candidates (diff, summary), the strategy run, the winner
put first in the ranking with the strategy's reason. The step's result is JSON (a durable race records
it: a resumed race does not ask the judge again)."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import UserError
from ..workspaces import branch_diff
from ._attempt import Attempt
from .selection import NEEDS_JUDGE, STRATEGIES, Candidate, Selection, select
from .selection._model_judge import ModelJudge


def choose_strategy(select_: str | None, judge: str | None) -> str:
    """The strategy a race uses: ``--select``, else ``checks+judge`` with ``--judge``, else ``checks``."""
    strategy = select_ or ("checks+judge" if judge else "checks")
    if strategy not in STRATEGIES:
        raise UserError(f"--select must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if strategy in NEEDS_JUDGE and not judge:
        raise UserError(f"--select {strategy} needs a judge model: add --judge MODEL (e.g. --judge opus)")
    if judge and strategy not in NEEDS_JUDGE:
        raise UserError(f"--select {strategy} makes no model calls, so --judge would not be used; "
                        f"drop --judge, or choose --select {' or '.join(NEEDS_JUDGE)}")
    return strategy


async def run_selection(session: Any, job: dict[str, Any], repo: Any, attempts: list[Attempt]) -> dict[str, Any]:
    """Selects among ``attempts`` by ``job["select"]``; judge calls are recorded on the race as ``judge``."""
    strategy = job.get("select") or ("checks+judge" if job["judge"] else "checks")

    async def candidate(a: Attempt) -> Candidate:
        if not (a.eligible and a.commit):
            return Candidate(a)
        diff = await asyncio.to_thread(branch_diff, repo, job["base_commit"], a.commit)
        return Candidate(a, diff, _summary(session, a))

    candidates = list(await asyncio.gather(*(candidate(a) for a in attempts)))
    judge = None
    if strategy in NEEDS_JUDGE:
        from ..models.usage import Usage

        name = session.catalog.resolve(job["judge"])
        model = Usage(session.build_model(name), session.catalog, sink=session, run_id=job["race_id"], role="judge")
        judge = ModelJudge(model, job["spec"], session.catalog.cost)
    return (await select(strategy, candidates, judge)).to_dict()


def apply_selection(ranked: list[Attempt], chosen: Selection) -> list[Attempt]:
    """The ranking with the selected winner first (places renumbered) and the strategy's reason on it."""
    if chosen.winner is None:
        return ranked
    winner = next(a for a in ranked if a.name == chosen.winner)
    ordered = [winner] + [a for a in ranked if a is not winner]
    for place, a in enumerate(ordered, 1):
        a.place = place
    winner.reason = f"picked by {chosen.strategy}: {chosen.reason}"
    return ordered


def _summary(session: Any, a: Attempt) -> str:
    """What the worker said it did: flotilla's agent's final message, or an external CLI's output tail."""
    if a.external:
        return a.output_tail[-2000:]
    try:
        record = session.store.get_run(a.run_id)
    except UserError:  # an attempt that never started its run
        return ""
    return str((record.get("result") or {}).get("text", ""))[-2000:]
