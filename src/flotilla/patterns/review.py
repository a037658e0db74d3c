"""Cross-model review: one model writes, a model from another lab reviews the diff, the writer fixes,
until the reviewer is clean, at most ``rounds`` times; a person owns the merge.

``begin`` checks everything before anything exists and records the run; the ``flotilla.review`` task
then: the writer implements the task as a work unit (``flotilla/<run>/work``, committed, ``check``
run), or, with ``branch``, a branch that exists already is copied there; the findings loop
(``_findings_loop``) runs on that branch; the worktree is removed, the branch kept. Nothing is
merged: ``flotilla merge RUN`` is the person's step. A reviewer from the writer's lab draws a warning
(the blind spots are shared), not an error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..events import RunFinished, RunStarted
from ..kernel.executor import Executor, task
from ..kernel.unit import UnitResult, Worker, WorkUnit
from ..store import new_id
from ._begun import Begun
from ..workspaces import (create_worktree, delete_branch, exclude_flotilla, merge_branch, open_repo, remove_worktree,
                          require_branch, require_clean, resolve_commit)
from ..workspaces._git import git
from ..workspaces.worktree import branch_name, worktree_root
from ._findings import review_config
from ._findings_loop import findings_loop
from ._race_plan import race_config

__all__ = ["Begun", "begin", "lab", "merge_review", "record_cancelled", "review_winner", "same_lab"]

WRITE_PROMPT = """{task}

You are working in a git worktree of the project, on a branch of your own. Change files in place; do not
commit (flotilla commits your work when you finish). A reviewer from another lab will read your diff.
End with a short summary of what you changed."""

LABS = (("claude", "anthropic"), ("gpt", "openai"), ("codex", "openai"), ("o3", "openai"), ("o4", "openai"),
        ("gemini", "google"), ("gemma", "google"), ("llama", "meta"), ("qwen", "alibaba"), ("mistral", "mistral"),
        ("deepseek", "deepseek"), ("grok", "xai"))


def lab(name: str) -> str:
    """The lab that trained a model, from its ``provider:model`` name (the model's family first: an
    OpenRouter or gateway name of a Claude model is still Anthropic's)."""
    provider, _, model = name.partition(":")
    model = model.rsplit("/", 1)[-1].lower() if model else provider.lower()
    for prefix, who in LABS:
        if model.startswith(prefix):
            return who
    return {"anthropic": "anthropic", "openai": "openai", "gemini": "google"}.get(provider, provider)


def same_lab(session: Any, writer: str | None, reviewer: str) -> str | None:
    """The warning for a reviewer from the writer's lab (not an error: it still reviews)."""
    if not writer or lab(session.catalog.resolve(writer)) != lab(session.catalog.resolve(reviewer)):
        return None
    return (f"same lab: {writer} and {reviewer} are both {lab(session.catalog.resolve(writer))}'s; the blind spots "
            "are shared (a reviewer from another lab catches more)")


def begin(session: Any, task: str | None = None, *, reviewer: str, writer: str | None = None,
          branch: str | None = None, base: str = "HEAD", rounds: int | None = None, check: str | None = None,
          agent: str = "implementer", reviewer_agent: str = "reviewer", budget_usd: float | None = None,
          max_turns: int | None = None, allow_dirty: bool = False, block_severity: str | None = None,
          block_confidence: float | None = None, prove: bool = False) -> Begun:
    """Checks everything a review needs before anything exists, then records it."""
    if bool(task and task.strip()) == bool(branch):
        raise UserError("a review needs a task for the writer, or --branch B to review an existing branch (not both)")
    if branch is None and not writer:
        raise UserError("a review of a task needs --writer MODEL (who implements it)")
    if prove and not writer:
        raise UserError("--prove needs a writer (--writer MODEL): the writer adds the tests that prove its fixes")
    overrides = {k: v for k, v in (("rounds", rounds), ("block_severity", block_severity),
                                   ("block_confidence", block_confidence)) if v is not None}
    try:
        config = review_config(session.settings).model_copy(update=overrides)
        config = type(config).model_validate(config.model_dump())
    except Exception as exc:  # noqa: BLE001 - pydantic's message names the field
        raise UserError(f"bad review option: {exc}".splitlines()[0] + "; --rounds is 1 or more, "
                        "--block-severity P0-P3, --block-confidence 0-1") from None
    if budget_usd is not None and budget_usd <= 0:
        raise UserError(f"--budget-usd must be more than 0 (got {budget_usd})")
    races = race_config(session.settings)
    repo = open_repo(session.project)
    base_branch = require_branch(repo)
    if not allow_dirty and branch is None:
        require_clean(repo)
    known = session.agents_for(repo.root)
    for name, flag in ((agent, "--agent"), (reviewer_agent, "--reviewer-agent")):
        if name not in known:
            raise UserError(f"no agent named {name!r} ({flag}); flotilla agents: {', '.join(sorted(known))}")
    for name in {m for m in (writer, reviewer) if m}:
        if name not in session._models:
            session.build_model(session.catalog.resolve(name))
    warnings = [w for w in [same_lab(session, writer, reviewer)] if w]
    tip = None
    if branch is not None:
        tip = resolve_commit(repo, branch)
        base_commit = git(repo.root, "merge-base", resolve_commit(repo, base), tip).stdout.strip()
    else:
        base_commit = resolve_commit(repo, base)
    wt_dir = exclude_flotilla(repo, races.worktree_dir)
    rid = new_id()
    job = {"review_id": rid, "root": str(repo.root), "task": (task or "").strip(), "branch": branch, "tip": tip,
           "writer": writer, "reviewer": reviewer, "agent": agent, "reviewer_agent": reviewer_agent,
           "config": {**config.model_dump(), "prove": prove}, "check": check or races.check, "setup": races.setup,
           "base_branch": base_branch, "base_commit": base_commit, "worktree_dir": wt_dir,
           "check_timeout_s": races.check_timeout_s, "budget_usd": budget_usd, "max_turns": max_turns,
           "writer_run_id": new_id(), "warnings": warnings}
    title = job["task"].splitlines()[0][:80] if job["task"] else f"review of {branch}"
    session.store.create_run("review", title, run_id=rid, meta={
        k: job[k] for k in ("root", "task", "branch", "writer", "reviewer", "base_branch", "base_commit", "config",
                            "check", "warnings")} | {"work_branch": branch_name(rid, "work")})
    session.store.emit(RunStarted(run_id=rid, kind="review", title=title))
    return Begun(rid, "review", job, job["task"] or job["branch"], warnings)


@task("flotilla.review")
async def review_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    session, rid = ex.session, job["review_id"]
    writing = None
    if job["branch"] is None:
        unit = WorkUnit(name="work", parent_id=rid, run_id=job["writer_run_id"], root=job["root"],
                        base_commit=job["base_commit"], instructions=WRITE_PROMPT.format(task=job["task"]),
                        worker=Worker(agent=job["agent"], model=job["writer"]), check=job["check"],
                        setup=job["setup"], worktree_dir=job["worktree_dir"], max_turns=job["max_turns"],
                        check_timeout_s=job["check_timeout_s"], budget_usd=job["budget_usd"], budget_scope=rid)
        writing = UnitResult.from_dict(await ex.result(await ex.spawn("flotilla.unit", unit.to_json(), id=unit.run_id)))
        if writing.status != "done":
            loop = {"ended": "failed", "reason": f"the writer ended {writing.status}: {writing.error or ''}",
                    "verdict": None, "rounds": [], "findings": [], "runs": {"writer": [], "reviewer": []}}
            return await ex.step("review:finish", lambda: _finish(session, job, loop, writing))
    else:
        await ex.step("review:copy", lambda: asyncio.to_thread(_copy_branch, job))
    fixers = [{"agent": job["agent"], "model": job["writer"]}] if job["writer"] else []
    loop = await findings_loop(ex, {
        "key": "review", "parent_id": rid, "root": job["root"], "worktree": "work", "worktree_dir": job["worktree_dir"],
        "base_commit": job["base_commit"], "reviewer": {"agent": job["reviewer_agent"], "model": job["reviewer"]},
        "fixers": fixers, "config": job["config"], "prove": job["config"].get("prove", False), "check": job["check"],
        "setup": job["setup"],
        "check_timeout_s": job["check_timeout_s"], "max_turns": job["max_turns"], "budget_usd": job["budget_usd"],
        "context": f"The task the change is for:\n{job['task']}" if job["task"] else f"The branch {job['branch']}."})
    return await ex.step("review:finish", lambda: _finish(session, job, loop, writing))


def _copy_branch(job: dict[str, Any]) -> None:
    """``--branch B``: the loop works on ``flotilla/<run>/work``, made at B's tip (B itself is untouched)."""
    repo = open_repo(Path(job["root"]))
    git(repo.root, "branch", "-f", branch_name(job["review_id"], "work"), job["tip"])
    create_worktree(repo, job["review_id"], "work", job["tip"], directory=job["worktree_dir"])


def _finish(session: Any, job: dict[str, Any], loop: dict[str, Any], writing: UnitResult | None) -> dict[str, Any]:
    store, rid = session.store, job["review_id"]
    repo = open_repo(Path(job["root"]))
    path = worktree_root(repo, job["worktree_dir"]) / rid / "work"
    if path.is_dir():
        remove_worktree(repo, path)
    branch = branch_name(rid, "work")
    if job["branch"] and not job["writer"]:  # review only: the copy holds nothing of its own
        delete_branch(repo, branch)
        branch = job["branch"]
    head = git(repo.root, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False).stdout.strip() or None
    writers = ([job["writer_run_id"]] if writing is not None else []) + loop["runs"]["writer"]
    cost = {"writer": store.cost([r for w in writers for r in store.family(w)]) if writers else 0.0,
            "reviewer": store.cost([r for w in loop["runs"]["reviewer"] for r in store.family(w)])}
    notes = list(job["warnings"])
    if head and loop["ended"] != "failed" and head != job["base_commit"] and branch != job["branch"]:
        notes.append(f"nothing was merged: review {branch} and merge it with `flotilla merge {rid}`")
    data = {"review_id": rid, "status": "failed" if loop["ended"] == "failed" else "done", **loop,
            "branch": branch if head else None, "head": head, "base_branch": job["base_branch"],
            "base_commit": job["base_commit"], "writer": job["writer"], "reviewer": job["reviewer"],
            "write": writing.to_dict() if writing is not None else None, "cost_usd": cost, "notes": notes,
            "merged": None}
    store.finish_run(rid, data["status"], loop["reason"], result=data)
    session.emit(RunFinished(run_id=rid, status=data["status"], reason=loop["reason"]))
    return data


def record_cancelled(session: Any, job: dict[str, Any]) -> None:
    """A stopped review: its worktree removed, its branch kept. Safe to call twice."""
    store, rid = session.store, job["review_id"]
    if store.get_run(rid)["status"] == "cancelled":
        return
    repo = open_repo(Path(job["root"]))
    path = worktree_root(repo, job["worktree_dir"]) / rid / "work"
    if path.is_dir():
        remove_worktree(repo, path)
    store.finish_run(rid, "cancelled", "stopped by the user; the work is kept on its branch")
    session.emit(RunFinished(run_id=rid, status="cancelled", reason="stopped by the user"))
    for run_id in store.family(rid)[1:]:
        if store.get_run(run_id)["status"] == "running":
            store.finish_run(run_id, "cancelled", "the review was stopped")


def merge_review(session: Any, run_id: str) -> str:
    """``flotilla merge RUN`` of a finished review (or pipeline): its branch into the base."""
    record = session.store.get_run(run_id)
    result = record["result"]
    if result is None:
        raise UserError(f"{record['kind']} {record['id']} has not finished ({record['status']})")
    if result.get("merged"):
        raise UserError(f"{record['kind']} {record['id']} is merged already ({result['merged'][:10]})")
    if not result.get("branch"):
        raise UserError(f"{record['kind']} {record['id']} left no branch to merge")
    repo = open_repo(Path(record["meta"]["root"]))
    head = merge_branch(repo, result["branch"], base_branch=result["base_branch"], base_commit=result["base_commit"],
                        message=f"flotilla {record['kind']} {record['id']}")
    delete_branch(repo, result["branch"])
    result["merged"] = head
    session.store.finish_run(record["id"], record["status"], record["reason"], result=result)
    return head


async def review_winner(session: Any, outcome: Any, reviewer: str) -> Any:
    """``race(..., review_with=MODEL)``: the winner's branch goes through the findings loop (its own model
    fixing, when it is a flotilla agent) before it is offered for merge; the race keeps it unmerged."""
    winner = outcome.winner
    if winner is None:
        return outcome
    fixer = None if winner.external else (winner.model or session.settings.model)
    check = session.store.get_run(outcome.race_id)["meta"].get("check")
    result = await session.review(None, reviewer=reviewer, writer=fixer, branch=winner.branch, check=check,
                                  base=outcome.base_commit, agent=winner.agent if fixer else "implementer")
    outcome.review = result
    merge = result["review_id"] if result.get("branch") and result["branch"] != winner.branch else outcome.race_id
    outcome.notes.append(f"the winner {winner.name} went through review {result['review_id']}: {result['ended']} "
                         f"({result['reason']}); merge it with `flotilla merge {merge}`")
    record = session.store.get_run(outcome.race_id)
    session.store.finish_run(outcome.race_id, record["status"], record["reason"], result=outcome.to_dict())
    return outcome
