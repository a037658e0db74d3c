"""Durable races: the race is a workflow, each attempt a child workflow, every model call, tool call,
commit and check a step. Killed mid-race, ``flotilla resume RACE`` (or any flotilla command that runs
something) finishes it: attempts that had finished stay finished, the others continue from their last
finished step, and the race concludes by the same ranking rules.

Workflows take and return JSON only, so a job is a plain dict (``race_job``): the workflow rebuilds the
repository, settings, agents and models from it. With ``queue`` the attempts go on the ``attempts``
queue for ``flotilla worker`` processes (other machines share the Postgres database and a git remote);
otherwise this process runs them. What is not durable: the live view and the race-wide budget meter,
which live in the starting process (``LIVE``); a resumed race meters each attempt on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

from .. import durable
from ..events import RunFinished
from ..store import open_store
from ..workspaces import open_repo
from ._attempt import Attempt, AttemptContext, AttemptPlan, run_attempt
from .race import BegunRace, RaceOptions, RaceOutcome, _clean_up, _conclude, _finish, _Tracker

ATTEMPTS_QUEUE = "attempts"

LIVE: dict[str, tuple[Any, dict[str, Attempt], Any]] = {}
"""Per race started in this process: (the event sink, the live ``Attempt`` objects by name, the shared
``Meter``). Not durable: a recovered race runs without them."""

_OPTION_FIELDS = [f.name for f in dataclasses.fields(RaceOptions) if f.name != "plans"]
_ATTEMPT_FIELDS = {f.name for f in dataclasses.fields(Attempt)}


def race_job(options: RaceOptions, begun: BegunRace, *, store: str, queue: bool = False,
             remote: str | None = None) -> dict[str, Any]:
    """The JSON a race workflow runs from."""
    return {"race_id": begun.race_id, "root": str(begun.repo.root), "store": store,
            "options": {k: getattr(options, k) for k in _OPTION_FIELDS},
            "plans": [dataclasses.asdict(p) for p in options.plans],
            "attempts": [{"name": a.name, "agent": a.agent, "model": a.model, "run_id": a.run_id,
                          "external": a.external} for a in begun.attempts],
            "base_branch": begun.base_branch, "base_commit": begun.base_commit,
            "worktree_dir": begun.worktree_dir, "queue": queue, "remote": remote}


async def start_race(job: dict[str, Any]) -> durable.Handle:
    """Starts (or, for a race id that exists, rejoins) the race workflow in this process."""
    if job.get("remote"):
        from ..workspaces.remote import publish_base

        await asyncio.to_thread(publish_base, open_repo(job["root"]), job["remote"], job["race_id"],
                                job["base_commit"])
    return await durable.start(race_workflow, job, workflow_id=job["race_id"])


@durable.workflow("flotilla.race")
async def race_workflow(job: dict[str, Any]) -> dict[str, Any]:
    """Runs the attempts (at most ``parallel`` at once), waits for them all, then concludes in one step."""
    options = job["options"]
    parallel = options.get("parallel") or len(job["plans"])
    waiting = [(plan, attempt) for plan, attempt in zip(job["plans"], job["attempts"])]
    running: list[durable.Handle] = []
    handles: list[durable.Handle] = []
    try:
        while waiting or running:
            while waiting and (job["queue"] or len(running) < parallel):
                plan, attempt = waiting.pop(0)
                one = {**{k: v for k, v in job.items() if k not in ("plans", "attempts")},
                       "plan": plan, "attempt": attempt}
                if job["queue"]:
                    handle = await durable.enqueue(ATTEMPTS_QUEUE, attempt_workflow, one,
                                                   workflow_id=attempt["run_id"])
                else:
                    handle = await durable.start(attempt_workflow, one, workflow_id=attempt["run_id"])
                handles.append(handle)
                running.append(handle)
            if job["queue"]:
                break  # the queue's own limits pace the workers
            first = await durable.wait_first(running)
            running = [h for h in running if h.id != first.id]
        results = await durable.wait_all(handles)
    except BaseException as exc:
        if _cancellation(exc):  # stopped from elsewhere (Ctrl-C: the command records it, after the attempts)
            await asyncio.to_thread(record_cancelled, job)
        raise
    return await durable.DurableSteps().step("race:conclude", lambda: _conclude_job(job, results))


@durable.workflow("flotilla.attempt")
async def attempt_workflow(job: dict[str, Any]) -> dict[str, Any]:
    """One attempt, from its JSON: rebuilds what it needs here (on a worker: a clone of the remote)."""
    steps = durable.DurableSteps()
    sink, live, meter = LIVE.get(job["race_id"], (None, {}, None))
    fields = job["attempt"]
    attempt = live.get(fields["name"]) or Attempt(**fields)
    plan = AttemptPlan(**job["plan"])
    try:
        ctx = await asyncio.to_thread(_context, job, sink, meter)
    except Exception as exc:  # noqa: BLE001 - one attempt that cannot start never stops the race
        attempt.status, attempt.error = "failed", f"{type(exc).__name__}: {exc}"
        return attempt.to_dict()
    await run_attempt(ctx, plan, attempt, steps=steps)
    if not _local(job) and attempt.name in ctx.worktrees:  # a worker's clone: the branch is pushed, drop the rest
        from ..workspaces import remove_worktree

        worktree = ctx.worktrees[attempt.name]
        await asyncio.to_thread(remove_worktree, ctx.repo, worktree.path, branch=worktree.branch)
    return attempt.to_dict()


def _context(job: dict[str, Any], sink: Any, meter: Any) -> AttemptContext:
    from ..config import load_settings

    options, push = job["options"], None
    if _local(job):
        repo, store = open_repo(job["root"]), open_store(job["store"])
    else:  # a worker, as on another machine: its own clone of the remote, the branch pushed back
        from ..workspaces.remote import push_branch, worker_clone

        remote = os.environ.get("FLOTILLA_WORKER_REMOTE") or job["remote"]  # `flotilla worker --remote`
        repo = worker_clone(remote, job["race_id"])
        push = lambda worktree: push_branch(repo, remote, worktree.branch)  # noqa: E731
        store = open_store(None)  # transcripts go to this machine's store (see the README)
    settings = load_settings(cwd=repo.root)
    agents: dict[str, Any] = {}
    limits = None
    if job["plan"].get("template") is None:
        from ..agents.loader import load_agents
        from ..agents.result import Limits

        agents, _errors = load_agents(repo.root)
        limits = Limits(budget_usd=options.get("budget_usd"), approve_asks=bool(options.get("approve_asks")))
    return AttemptContext(repo=repo, race_id=job["race_id"], base_commit=job["base_commit"], spec=options["spec"],
                          check=options["check"], store=store, sink=sink, worktree_dir=job["worktree_dir"],
                          check_timeout=options["check_timeout"], agent_timeout=options["agent_timeout"],
                          setup=options.get("setup"), settings=settings, agents=agents, limits=limits,
                          meter=meter, push=push)


def _local(job: dict[str, Any]) -> bool:
    """Whether the attempt runs in the orchestrator's repository: yes unless it was queued for workers
    that share a remote (each worker then works in its own clone, as if on another machine)."""
    return not (job["queue"] and job.get("remote"))


async def _conclude_job(job: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    from ..config import load_settings

    repo = open_repo(job["root"])
    if job.get("remote"):
        from ..workspaces.remote import fetch_attempts

        await asyncio.to_thread(fetch_attempts, repo, job["remote"], job["race_id"])
    attempts = [Attempt(**{k: v for k, v in r.items() if k in _ATTEMPT_FIELDS}) for r in results]
    options = RaceOptions(**job["options"], plans=[AttemptPlan(**p) for p in job["plans"]])
    store = open_store(job["store"])
    ctx = _local_context(job, repo, store, attempts)
    tracker = _Tracker(attempts, options.budget_usd, lambda: None)
    outcome = await _conclude(options, repo, ctx, attempts, job["base_branch"], job["base_commit"], store,
                              load_settings(cwd=repo.root), None, None, tracker)
    if job.get("remote") and not options.keep:  # losers' branches were fetched, not made here
        from ..workspaces import delete_branch

        keep = {outcome.winner.name} if outcome.winner and not outcome.merged else set()
        for a in attempts:
            if a.name not in keep and a.branch:
                await asyncio.to_thread(delete_branch, repo, a.branch)
    return outcome.to_dict()


def _local_context(job: dict[str, Any], repo: Any, store: Any, attempts: list[Attempt]) -> AttemptContext:
    from ..workspaces import Worktree
    from ..workspaces.worktree import worktree_root

    options = job["options"]
    ctx = AttemptContext(repo=repo, race_id=job["race_id"], base_commit=job["base_commit"], spec=options["spec"],
                         check=options["check"], store=store, sink=None, worktree_dir=job["worktree_dir"])
    mine = worktree_root(repo, job["worktree_dir"])
    for a in attempts:  # the worktrees of this repository (not a worker's clone), for clean-up
        if a.path and Path(a.path).is_dir() and Path(a.path).is_relative_to(mine):
            ctx.worktrees[a.name] = Worktree(repo=repo, path=Path(a.path), branch=a.branch, base=job["base_commit"])
    return ctx


def record_cancelled(job: dict[str, Any]) -> None:
    """Records a stopped race as cancelled, keeping every attempt's branch (what a plain race does)."""
    from ..workspaces import Worktree
    from ..workspaces.worktree import branch_name, worktree_root

    store = open_store(job["store"])
    if not _has_run(store, job["race_id"]) or store.get_run(job["race_id"])["status"] == "cancelled":
        return
    repo = open_repo(job["root"])
    attempts = [Attempt(**{**a, "status": "cancelled"}) for a in job["attempts"]]
    ctx = _local_context(job, repo, store, [])
    for a in attempts:
        path = worktree_root(repo, job["worktree_dir"]) / job["race_id"] / a.name
        a.branch = branch_name(job["race_id"], a.name)
        if path.is_dir():
            ctx.worktrees[a.name] = Worktree(repo=repo, path=path, branch=a.branch, base=job["base_commit"])
    _clean_up(repo, ctx, attempts, keep_branches={a.name for a in attempts}, keep_worktrees=False)
    outcome = RaceOutcome(job["race_id"], "cancelled", attempts, None, job["base_branch"], job["base_commit"])
    _finish(store, outcome, "stopped by the user; every attempt's work is kept on its branch")
    for a in attempts:  # an attempt stopped between steps may not have recorded its own end
        if _has_run(store, a.run_id) and store.get_run(a.run_id)["status"] == "running":
            store.finish_run(a.run_id, "cancelled", "the race was stopped")
            store.emit(RunFinished(run_id=a.run_id, status="cancelled", reason="the race was stopped"))


def _has_run(store: Any, run_id: str) -> bool:
    try:
        store.get_run(run_id)
    except Exception:  # noqa: BLE001 - UserError: no such run
        return False
    return True


def _cancellation(exc: BaseException) -> bool:
    from ..errors import Cancelled

    return isinstance(exc, Cancelled) or type(exc).__name__ == "DBOSWorkflowCancelledError"
