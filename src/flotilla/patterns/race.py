"""Race: the same spec in N git worktrees, each attempt verified by the project's check, ranked, the winner merged.

``run_race`` is the whole pattern, top to bottom: refuse a repository it
cannot work from, record the race, run the attempts concurrently (bounded by
``parallel``; one crashing never stops the others), judge the ones that
passed, rank, clean up the losers, merge the winner (``pick="auto"``) and
record everything in the store. Ctrl-C cancels every attempt, keeps their
branches and records the race as cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RepositoryError, UserError
from ..events import FallbackUsed, ModelCalled, RunFinished, RunStarted
from ..store import new_id
from ..workspaces import (branch_diff, delete_branch, ensure_excluded, merge_branch, open_repo, remove_worktree,
                          require_branch, require_clean, resolve_commit)
from ._attempt import Attempt, AttemptContext, AttemptPlan, run_attempt
from ._judge import judge_diff
from ._race_plan import RaceConfig, build_plans, estimate, race_config
from ._race_report import report
from ._ranking import rank

__all__ = ["Attempt", "AttemptPlan", "RaceConfig", "RaceOptions", "RaceOutcome", "build_plans", "estimate",
           "race_config", "report", "run_race"]

MAX_STORED_DIFF = 200_000


@dataclass
class RaceOptions:
    """One race: what to do, how many ways, and how to verify and pick."""

    spec: str
    check: str
    plans: list[AttemptPlan]
    base: str = "HEAD"
    parallel: int | None = None
    judge: str | None = None
    pick: str = "auto"
    keep: bool = False
    budget_usd: float | None = None
    allow_dirty: bool = False
    setup: str | None = None
    worktree_dir: str = RaceConfig().worktree_dir
    check_timeout: float = 600.0
    agent_timeout: float = 1800.0
    approve_asks: bool = False
    """``--yes``: calls an ``ask`` permission rule holds for a person go ahead in every attempt."""


@dataclass
class RaceOutcome:
    race_id: str
    status: str
    attempts: list[Attempt]
    """Best first."""
    winner: Attempt | None
    base_branch: str
    base_commit: str
    merged: str | None = None
    """The base branch's new commit when the winner was merged."""
    merge_error: str | None = None
    winner_diff: str = ""
    judge_cost_usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    def attempts_by_name(self) -> dict[str, Attempt]:
        return {a.name: a for a in self.attempts}

    def to_dict(self) -> dict[str, Any]:
        return {"race_id": self.race_id, "status": self.status, "winner": self.winner.name if self.winner else None,
                "base_branch": self.base_branch, "base_commit": self.base_commit, "merged": self.merged,
                "merge_error": self.merge_error, "judge_cost_usd": self.judge_cost_usd, "notes": self.notes,
                "attempts": [a.to_dict() for a in self.attempts], "winner_diff": self.winner_diff[:MAX_STORED_DIFF]}


class _Tracker:
    """An event sink that keeps each attempt's live turns, tokens and cost, and stops the race at its budget."""

    def __init__(self, attempts: list[Attempt], budget_usd: float | None, on_over: Callable[[], None],
                 downstream: Any = None) -> None:
        self.by_run = {a.run_id: a for a in attempts}
        self.attempts, self.budget_usd, self.on_over = attempts, budget_usd, on_over
        self.downstream = downstream
        self.over = False

    def emit(self, event: Any) -> None:
        if isinstance(event, FallbackUsed) and event.run_id in self.by_run:
            self.by_run[event.run_id].fallback_used = event.to_model
        attempt = self.by_run.get(event.run_id) if isinstance(event, ModelCalled) else None
        if attempt is not None:
            if event.role == "executor" and not event.error:
                attempt.turns += 1
            attempt.input_tokens += event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
            attempt.output_tokens += event.output_tokens
            attempt.cost_usd += event.cost_usd
            spent = sum(a.cost_usd for a in self.attempts)
            if self.budget_usd is not None and spent >= self.budget_usd and not self.over:
                self.over = True
                self.on_over()
        if self.downstream is not None:
            self.downstream.emit(event)


@dataclass
class BegunRace:
    """A race recorded in the store, its attempts named, nothing run yet."""

    race_id: str
    repo: Any
    base_branch: str
    base_commit: str
    worktree_dir: str
    attempts: list[Attempt]


def begin_race(options: RaceOptions, *, root: Path | None, store: Any) -> BegunRace:
    """Checks the options and the repository, records the race and names its attempts.

    Raises ``UserError``/``RepositoryError`` before anything is recorded when the race cannot start.
    """
    if not options.plans:
        raise UserError("a race needs at least one attempt; pass --model (and -n)")
    if not options.check.strip():
        raise UserError("a race needs a check to verify attempts: pass --check 'pytest -q' "
                        "or set check under [race] in flotilla.toml")
    if options.pick not in ("auto", "manual"):
        raise UserError(f"--pick must be auto or manual, not {options.pick!r}")
    repo = open_repo(root or Path.cwd())
    base_branch = require_branch(repo)
    if not options.allow_dirty:
        require_clean(repo)
    base_commit = resolve_commit(repo, options.base)
    wt_dir = options.worktree_dir.strip("/")
    inside = [] if Path(wt_dir).is_absolute() else [f"/{wt_dir}/"]
    ensure_excluded(repo, *inside, "/.flotilla/*.db", "/.flotilla/*.db-*")
    race_id = store.create_run("race", options.spec.strip().splitlines()[0][:80], meta={
        "spec": options.spec, "check": options.check, "base": options.base, "base_commit": base_commit,
        "base_branch": base_branch, "root": str(repo.root), "worktree_dir": wt_dir, "pick": options.pick,
        "judge": options.judge, "budget_usd": options.budget_usd})
    store.emit(RunStarted(run_id=race_id, kind="race", title=options.spec[:80]))
    attempts = [Attempt(name=p.name, agent=p.agent, model=p.model, run_id=new_id(), external=p.template is not None)
                for p in options.plans]
    store.update_meta(race_id, attempts=[{"name": a.name, "run_id": a.run_id, "agent": a.agent, "model": a.model,
                                          "branch": f"flotilla/{race_id}/{a.name}"} for a in attempts])
    return BegunRace(race_id, repo, base_branch, base_commit, wt_dir, attempts)


async def run_race(options: RaceOptions, *, root: Path | None = None, store: Any, settings: Any = None,
                   model_factory: Callable[[str], Any] | None = None, sink: Any = None,
                   agents: dict[str, Any] | None = None, catalog: Any = None,
                   observe: Callable[[str, list[Attempt]], None] | None = None) -> RaceOutcome:
    """Runs a race in the repository at ``root`` and returns its outcome (also recorded in ``store``).

    ``observe(race_id, attempts)`` is called once the attempts exist, for a live view. Raises
    ``RepositoryError`` before anything starts when the repository cannot be raced from.
    """
    begun = begin_race(options, root=root, store=store)
    repo, base_branch, base_commit, wt_dir = begun.repo, begun.base_branch, begun.base_commit, begun.worktree_dir
    race_id, attempts = begun.race_id, begun.attempts
    if agents is None and any(p.template is None for p in options.plans):
        from ..agents.loader import load_agents

        agents, _errors = load_agents(repo.root)
    tasks: list[asyncio.Task[Any]] = []

    def over_budget() -> None:
        # a check costs nothing: attempts already checking finish; the rest stop
        for attempt, task in zip(attempts, tasks):
            if not task.done() and attempt.status in ("pending", "setup", "running"):
                attempt.status = "budget"
                task.cancel()

    tracker = _Tracker(attempts, options.budget_usd, over_budget, downstream=sink)
    limits = meter = None
    if any(p.template is None for p in options.plans):
        from ..agents.result import Limits
        from ..models.budget import Meter

        limits, meter = Limits(budget_usd=options.budget_usd, approve_asks=options.approve_asks), Meter()
    ctx = AttemptContext(repo=repo, race_id=race_id, base_commit=base_commit, spec=options.spec,
                         check=options.check, store=store, sink=tracker, worktree_dir=wt_dir,
                         check_timeout=options.check_timeout, agent_timeout=options.agent_timeout,
                         setup=options.setup, settings=settings, model_factory=model_factory,
                         agents=agents or {}, limits=limits, meter=meter)
    if observe is not None:
        observe(race_id, attempts)
    gate = asyncio.Semaphore(options.parallel or len(attempts))

    async def one(plan: AttemptPlan, attempt: Attempt) -> None:
        async with gate:
            if tracker.over:
                attempt.status = "budget"
                return
            await run_attempt(ctx, plan, attempt)

    tasks.extend(asyncio.create_task(one(p, a)) for p, a in zip(options.plans, attempts))
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
        return await _conclude(options, repo, ctx, attempts, base_branch, base_commit, store, settings,
                               model_factory, catalog, tracker)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for attempt in attempts:
            if attempt.status not in ("done", "failed"):
                attempt.status = "cancelled"
        await asyncio.to_thread(_clean_up, repo, ctx, attempts, keep_branches={a.name for a in attempts},
                                keep_worktrees=False)
        outcome = RaceOutcome(race_id, "cancelled", attempts, None, base_branch, base_commit)
        _finish(store, outcome, "stopped by the user; every attempt's work is kept on its branch")
        raise


async def _conclude(options: RaceOptions, repo: Any, ctx: AttemptContext, attempts: list[Attempt],
                    base_branch: str, base_commit: str, store: Any, settings: Any,
                    model_factory: Callable[[str], Any] | None, catalog: Any, tracker: _Tracker) -> RaceOutcome:
    """Judge, rank, clean up, merge, record."""
    judge_cost = 0.0
    if options.judge:
        judge_cost = await _judge_all(options, attempts, repo, base_commit, settings, model_factory, catalog,
                                      store, ctx.race_id)
    ranked = rank(attempts)
    winner = ranked[0] if ranked and ranked[0].eligible else None
    best = winner or (ranked[0] if ranked and ranked[0].commit else None)
    outcome = RaceOutcome(ctx.race_id, "done" if winner else "failed", ranked, winner, base_branch, base_commit,
                          judge_cost_usd=judge_cost)
    if best is not None and best.commit:
        outcome.winner_diff = await asyncio.to_thread(branch_diff, repo, base_commit, best.commit)
    keep = {a.name for a in attempts} if options.keep else ({best.name} if best else set())
    await asyncio.to_thread(_clean_up, repo, ctx, attempts, keep_branches=keep, keep_worktrees=options.keep)
    if tracker.over or any(a.status == "budget" for a in attempts):
        outcome.notes.append(f"the budget of ${options.budget_usd:.2f} was spent; unfinished attempts were stopped")
    if winner is None:
        outcome.notes.append("no attempt passed its check: nothing was merged")
    elif options.pick == "auto":
        try:
            outcome.merged = await asyncio.to_thread(
                merge_branch, repo, winner.branch, base_branch=base_branch, base_commit=base_commit,
                message=f"flotilla race {ctx.race_id}: {winner.name} ({winner.agent}, {winner.model or 'default'})"
                        f"\n\n{options.spec.strip()[:2000]}")
            if not options.keep:
                await asyncio.to_thread(delete_branch, repo, winner.branch)
        except RepositoryError as exc:
            outcome.merge_error = str(exc)
    else:
        outcome.notes.append(f"merge it with `flotilla merge {ctx.race_id}` (branch {winner.branch})")
    reason = "" if winner else "no attempt passed its check"
    _finish(store, outcome, reason)
    return outcome


async def _judge_all(options: RaceOptions, attempts: list[Attempt], repo: Any, base_commit: str, settings: Any,
                     model_factory: Callable[[str], Any] | None, catalog: Any, store: Any, race_id: str) -> float:
    if catalog is None:
        from ..models.catalog import Catalog

        catalog = Catalog.load(settings.data if settings is not None else None)
    name = catalog.resolve(options.judge or "")
    model = model_factory(name) if model_factory else _build_model(name, settings, catalog)
    price = catalog.cost if catalog is not None else None
    contenders = [a for a in attempts if a.eligible and a.commit]

    async def one(a: Attempt) -> float:
        diff = await asyncio.to_thread(branch_diff, repo, base_commit, a.commit)
        verdict = await judge_diff(model, options.spec, diff, cost=price)
        a.judge_score, a.judge_reasons = verdict.score, verdict.reasons
        provider, _, name = getattr(model, "name", "judge").partition(":")
        store.emit(ModelCalled(run_id=race_id, provider=provider, model=name, role="judge",
                               input_tokens=verdict.input_tokens, output_tokens=verdict.output_tokens,
                               cost_usd=verdict.cost_usd))
        return verdict.cost_usd

    return sum(await asyncio.gather(*(one(a) for a in contenders)))


def _build_model(name: str | None, settings: Any, catalog: Any) -> Any:
    from ..models.providers import build_model  # written alongside; imported late so races without a judge need none

    return build_model(name, settings=settings, catalog=catalog)


def _clean_up(repo: Any, ctx: AttemptContext, attempts: list[Attempt], *, keep_branches: set[str],
              keep_worktrees: bool) -> None:
    for attempt in attempts:
        worktree = ctx.worktrees.get(attempt.name)
        if worktree is None:
            continue
        if not keep_worktrees:
            remove_worktree(repo, worktree.path, branch=None if attempt.name in keep_branches else worktree.branch)
        elif attempt.name not in keep_branches:
            delete_branch(repo, worktree.branch)


def _finish(store: Any, outcome: RaceOutcome, reason: str) -> None:
    store.finish_run(outcome.race_id, outcome.status, reason, result=outcome.to_dict())
    store.emit(RunFinished(run_id=outcome.race_id, status=outcome.status, reason=reason))
