"""Fan-out: a read-only lead splits a job into independent slices, workers do and prove each, a merge
queue integrates the proven ones, one report comes back.

Written once, on the kernel, like the race: ``begin`` checks everything before anything exists and
records the run; the ``flotilla.fanout`` task then, each part a step done once however often it is
resumed:

1. the lead (an agent run, read-only) explores and answers through ``submit_plan``, validated by the
   runtime (``_fanout_plan``); slices whose files overlap are joined into one;
2. the plan is stored (run meta ``plan``); ``plan_only`` stops here; else a person approves it
   (``yes`` skips; ``Session.signal(run, "approve", True)`` answers, durably);
3. each slice's ``proof`` runs on the base: one that already passes "proves nothing" and is not run;
4. each slice is a work unit (its instructions only, never the lead's transcript), at most
   ``parallel`` at once, models round-robin, its run id fixed in the plan so that a resumed fan-out
   never starts a second worker for a slice; each gets ``min(slice budget, what the total has left)``
   as its own per-call cap, and one that would get nothing is not started;
5. the unit's check is the proof (it must pass on the branch), then ``check`` on the branch;
6. the merge queue merges proven slices one at a time into ``flotilla/<run>/integration``, re-running
   ``check`` after each; a conflict or a red check leaves the slice on its branch;
7. the integration branch is merged into the base (``pick="auto"``), and the lead reads the slice
   summaries, only them, and writes the closing paragraph of the report.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..errors import RepositoryError, UserError
from ..events import PlanReady, RunFinished, RunStarted
from ..kernel.agent_run import run_agent_in
from ..kernel.executor import Executor, task
from ..kernel.unit import UnitResult, Worker, WorkUnit
from ..store import new_id
from ._begun import Begun
from ..workspaces import (create_worktree, delete_branch, exclude_flotilla, merge_branch, open_repo,
                          remove_worktree, require_branch, require_clean, resolve_commit)
from ..workspaces.integration import merge_one
from ..workspaces.sandbox import sandbox_for
from ..workspaces.worktree import branch_name, remove_run_worktrees, worktree_root
from ._fanout_plan import join_overlapping, plan_table, submission
from ._fanout_report import lead_report, slice_row
from ._race_plan import race_config

__all__ = ["Begun", "begin", "plan_table", "record_cancelled"]

LEAD_PROMPT = """{job}

You are the lead of a fan-out. Explore the repository (read-only) just enough to split this job into
independent slices, at most {max_slices}. Each slice goes to a worker who sees only that slice: its
title, instructions, the files it will change, and its proof. So write instructions that stand alone.
Slices must not touch the same files. Each slice's `proof` is a shell command run at the repository
root that fails now and passes once the slice is done (typically one test). Then call submit_plan."""

SLICE_PROMPT = """{title}

{instructions}

Files you are expected to change: {files}
When you are done, this command must pass (it fails now): `{proof}`

You are working in a git worktree of the project, on a branch of your own. Change files in place; do not
commit (flotilla commits your work when you finish). End with a short summary of what you changed."""


def begin(session: Any, job: str, *, lead: str | None = None, models: list[str] = (),  # type: ignore[assignment]
          agent: str = "implementer", lead_agent: str = "explorer", max_slices: int = 8,
          parallel: int | None = None, check: str | None = None, budget_usd: float | None = None,
          slice_budget_usd: float | None = None, plan_only: bool = False, yes: bool = False, pick: str = "auto",
          base: str = "HEAD", allow_dirty: bool = False, max_turns: int | None = None,
          slice_timeout_s: float | None = None) -> Begun:
    """Checks everything a fan-out needs before anything exists, then records it."""
    if not job or not job.strip():
        raise UserError("a fan-out needs a job: say what to do, as an argument")
    if pick not in ("auto", "manual"):
        raise UserError(f"--pick must be auto or manual, not {pick!r}")
    for flag, value, low in (("--parallel", parallel, 1), ("--max-slices", max_slices, 1)):
        if value is not None and value < low:
            raise UserError(f"{flag} must be at least {low} (got {value})")
    for flag, value in (("--budget-usd", budget_usd), ("--slice-budget-usd", slice_budget_usd)):
        if value is not None and value <= 0:
            raise UserError(f"{flag} must be more than 0 (got {value})")
    config = race_config(session.settings)
    check = check or config.check
    repo = open_repo(session.project)
    base_branch = require_branch(repo)
    if not allow_dirty:
        require_clean(repo)
    known = session.agents_for(repo.root)
    for name, flag in ((agent, "--agent"), (lead_agent, "--lead-agent")):
        if name not in known:
            raise UserError(f"no agent named {name!r} ({flag}); flotilla agents: {', '.join(sorted(known))}")
    lead_model = lead or session.settings.model
    workers = [m for m in models if m] or [lead_model]
    for name in {lead_model, *workers}:  # every model resolves and has its key, before anything exists
        if name and name not in session._models:
            session.build_model(session.catalog.resolve(name))
    base_commit = resolve_commit(repo, base)
    wt_dir = exclude_flotilla(repo, config.worktree_dir)
    fanout_id = new_id()
    data = {"fanout_id": fanout_id, "root": str(repo.root), "job": job, "lead_model": lead_model,
            "lead_agent": lead_agent, "lead_run_id": new_id(), "models": workers, "agent": agent,
            "max_slices": max_slices, "parallel": parallel or config.parallel, "check": check,
            "budget_usd": budget_usd, "slice_budget_usd": slice_budget_usd, "plan_only": plan_only, "yes": yes,
            "pick": pick, "base_branch": base_branch, "base_commit": base_commit, "worktree_dir": wt_dir,
            "check_timeout_s": config.check_timeout_s, "setup": config.setup, "max_turns": max_turns,
            "slice_timeout_s": slice_timeout_s}
    session.store.create_run("fanout", job.strip().splitlines()[0][:80], run_id=fanout_id, meta={
        k: data[k] for k in ("job", "root", "base_branch", "base_commit", "check", "pick", "lead_model", "lead_run_id",
                             "models", "budget_usd", "slice_budget_usd", "worktree_dir")})
    session.store.emit(RunStarted(run_id=fanout_id, kind="fanout", title=job[:80]))
    return Begun(fanout_id, "fanout", data, data["job"])


@task("flotilla.fanout")
async def fanout_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    session, fid = ex.session, job["fanout_id"]
    lead = await run_agent_in(ex, job["lead_agent"], LEAD_PROMPT.format(job=job["job"], max_slices=job["max_slices"]),
                              Path(job["root"]), run_id=job["lead_run_id"], parent_run_id=fid,
                              model=job["lead_model"], read_only=True, budget_usd=job["budget_usd"],
                              budget_scope=fid, max_turns=job["max_turns"], submit=submission(job["max_slices"]))
    if lead.submitted is None:
        why = f"the lead gave no valid plan: {lead.error or lead.stop_reason}"
        return await ex.step("fanout:finish", lambda: _finish(session, job, "failed", why, [], {}))
    slices = await ex.step("fanout:plan", lambda: _plan(session, job, lead.submitted))
    if job["plan_only"]:
        return await ex.step("fanout:finish", lambda: _finish(session, job, "planned", "planned only", slices, {}))
    if not job["yes"] and not await ex.wait_signal(f"{fid}:approve"):
        return await ex.step("fanout:finish", lambda: _finish(session, job, "rejected", "the plan was not approved",
                                                              slices, {}))
    await ex.step("fanout:approved", lambda: session.store.update_meta(fid, state="running"))
    rows: dict[str, dict[str, Any]] = {}
    for s in slices:
        before = await ex.step(f"fanout:proof-base:{s['id']}", lambda s=s: _proof_on_base(session, job, s))
        rows[s["id"]] = {"proof_before": before}
    units = await _run_workers(ex, job, slices, rows)
    for s in slices:
        if s["id"] in units:
            unit = UnitResult.from_dict(units[s["id"]])
            rows[s["id"]].update(await ex.step(f"fanout:verify:{s['id']}",
                                               lambda s=s, u=unit: _verify(session, job, s, u)))
    head = job["base_commit"]
    for s in slices:
        if rows[s["id"]]["status"] == "proven":
            merged = await ex.step(f"fanout:merge:{s['id']}", lambda s=s, h=head: _merge_slice(session, job, s, h))
            rows[s["id"]].update(merged["row"])
            head = merged["head"]
    ended = await ex.step("fanout:integrate", lambda: asyncio.to_thread(_integrate, job, slices, rows, head))
    report = await ex.step("fanout:report", lambda: lead_report(session, job, slices, rows))
    return await ex.step("fanout:finish", lambda: _finish(session, job, ended["status"], ended["reason"], slices,
                                                          rows, merged=ended["merged"], notes=ended["notes"],
                                                          report=report))


def _plan(session: Any, job: dict[str, Any], submitted: dict[str, Any]) -> list[dict[str, Any]]:
    """The slices to run, with their models (round-robin) and run ids fixed once, and stored."""
    slices = join_overlapping(submitted["slices"])
    for n, s in enumerate(slices):
        s.model, s.run_id = job["models"][n % len(job["models"])], new_id()
    plan = [s.to_json() for s in slices]
    waiting = not (job["plan_only"] or job["yes"])
    session.store.update_meta(job["fanout_id"], plan=plan, state="awaiting approval" if waiting else "planned")
    session.emit(PlanReady(run_id=job["fanout_id"], slices=plan, awaiting_approval=waiting))
    return plan


async def _proof_on_base(session: Any, job: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    repo = open_repo(Path(job["root"]))
    base = await asyncio.to_thread(create_worktree, repo, job["fanout_id"], "base", job["base_commit"],
                                   directory=job["worktree_dir"])
    await asyncio.to_thread(_scrub, base)
    done = await base.run(s["proof"], timeout=job["check_timeout_s"], sandbox=_sandbox(session, job).for_checks())
    return done.to_dict()


def _scrub(worktree: Any) -> None:
    from ..workspaces._git import git

    git(worktree.path, "reset", "-q", "--hard")
    git(worktree.path, "clean", "-q", "-fd")


async def _run_workers(ex: Executor, job: dict[str, Any], slices: list[dict[str, Any]],
                       rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Runs one unit per slice that proves something, at most ``parallel`` at once, each within budget;
    returns each started slice's unit result."""
    handles: dict[str, Any] = {}
    running: list[Any] = []
    allotted: dict[str, float | None] = {}
    try:
        for s in slices:
            if rows[s["id"]]["proof_before"]["passed"]:
                rows[s["id"]]["status"] = "proves nothing"
                continue
            if len(running) >= (job["parallel"] or len(slices)):
                first = await ex.wait_first(running)
                running = [h for h in running if h.id != first.id]
            live = {h.id: allotted[h.id] for h in running}
            allot = await ex.step(f"fanout:allot:{s['id']}", lambda: _allot(ex.session, job, live))
            if allot is not None and allot <= 0:
                rows[s["id"]].update(status="budget", error="not started: the fan-out's budget of "
                                                            f"${job['budget_usd']:.2f} has nothing left for it")
                continue
            allotted[s["run_id"]] = allot
            handles[s["id"]] = handle = await ex.spawn("flotilla.unit", _unit(job, s, allot).to_json(), id=s["run_id"])
            running.append(handle)
        return {sid: await ex.result(handle) for sid, handle in handles.items()}
    except asyncio.CancelledError:
        for handle in handles.values():
            await ex.cancel(handle.id)
        raise


def _allot(session: Any, job: dict[str, Any], running: dict[str, float | None]) -> float | None:
    """What a slice about to start may spend: the slice cap, within what the total has left once the
    lead's and every slice's spend and the running slices' unspent allotments are counted."""
    cap, total = job["slice_budget_usd"], job["budget_usd"]
    if total is None:
        return cap
    store = session.store
    spent = store.cost(store.family(job["fanout_id"]))
    held = sum(max(0.0, a - store.cost(store.family(rid))) for rid, a in running.items() if a is not None)
    left = round(total - spent - held, 6)
    return left if cap is None else min(cap, left)


def _unit(job: dict[str, Any], s: dict[str, Any], allot: float | None) -> WorkUnit:
    return WorkUnit(name=s["id"], parent_id=job["fanout_id"], run_id=s["run_id"], root=job["root"],
                    base_commit=job["base_commit"],
                    instructions=SLICE_PROMPT.format(title=s["title"], instructions=s["instructions"],
                                                     files=", ".join(s["files"]), proof=s["proof"]),
                    worker=Worker(agent=job["agent"], model=s["model"]), check=s["proof"], setup=job["setup"],
                    worktree_dir=job["worktree_dir"], max_turns=job["max_turns"], timeout_s=job["slice_timeout_s"],
                    check_timeout_s=job["check_timeout_s"], budget_usd=allot)


async def _verify(session: Any, job: dict[str, Any], s: dict[str, Any], unit: UnitResult) -> dict[str, Any]:
    """The slice's row once its worker ended: the proof on the branch (the unit's check), then ``check``."""
    row = slice_row(job, session, unit)
    if unit.status != "done":
        row["status"] = unit.status if unit.status != "failed" else "worker failed"
        return row
    if not unit.passed:
        row["status"] = "unproven"
        return row
    if job["check"]:
        wt = create_worktree(open_repo(Path(job["root"])), job["fanout_id"], s["id"], job["base_commit"],
                             directory=job["worktree_dir"])
        done = await wt.run(job["check"], timeout=job["check_timeout_s"], sandbox=_sandbox(session, job).for_checks())
        row["check"] = done.to_dict()
        if not done.passed:
            row["status"] = "check red"
            return row
    row["status"] = "proven"
    return row


async def _merge_slice(session: Any, job: dict[str, Any], s: dict[str, Any], head: str) -> dict[str, Any]:
    repo = open_repo(Path(job["root"]))
    wt = await asyncio.to_thread(create_worktree, repo, job["fanout_id"], "integration", job["base_commit"],
                                 directory=job["worktree_dir"])
    done = await merge_one(wt, branch_name(job["fanout_id"], s["id"]), head,
                           message=f"flotilla fanout {job['fanout_id']}: {s['id']} ({s['title'][:60]})",
                           check=job["check"], timeout=job["check_timeout_s"],
                           sandbox=_sandbox(session, job).for_checks())
    row = {"status": "merged" if done.merged else ("conflict" if done.check is None else "red after merge"),
           "merge_reason": done.reason, "check_after_merge": done.check}
    return {"head": done.head, "row": row}


def _integrate(job: dict[str, Any], slices: list[dict[str, Any]], rows: dict[str, dict[str, Any]],
               head: str) -> dict[str, Any]:
    """Merges the integration branch into the base (``pick`` auto) and cleans up the worktrees."""
    repo = open_repo(Path(job["root"]))
    fid, notes = job["fanout_id"], []
    merged_ids = [s["id"] for s in slices if rows[s["id"]].get("status") == "merged"]
    integration = branch_name(fid, "integration")
    mine = worktree_root(repo, job["worktree_dir"]) / fid
    for name in ["base", "integration", *(s["id"] for s in slices)]:
        if (mine / name).is_dir():
            remove_worktree(repo, mine / name)
    delete_branch(repo, branch_name(fid, "base"))
    merged = None
    if not merged_ids:
        delete_branch(repo, integration)
        return {"status": "failed", "reason": "no slice was proven and merged", "merged": None,
                "notes": ["no slice was proven and merged: nothing reached the base"]}
    for sid in merged_ids:  # their work is on the integration branch now
        delete_branch(repo, branch_name(fid, sid))
    if job["pick"] == "auto":
        try:
            merged = merge_branch(repo, integration, base_branch=job["base_branch"], base_commit=job["base_commit"],
                                  message=f"flotilla fanout {fid}: {len(merged_ids)} slices\n\n{job['job'][:2000]}")
            delete_branch(repo, integration)
        except RepositoryError as exc:
            notes.append(f"the integration branch {integration} could not be merged into {job['base_branch']}: {exc}")
    else:
        notes.append(f"merge it with `flotilla merge {fid}` (branch {integration})")
    left = [s["id"] for s in slices if rows[s["id"]].get("status") not in ("merged", "proves nothing", "budget")]
    if left:
        notes.append(f"not merged, left on their branches: {', '.join(left)}")
    status = "done" if len(merged_ids) == len(slices) else "partial"
    return {"status": status, "reason": f"{len(merged_ids)} of {len(slices)} slices merged", "merged": merged,
            "notes": notes}


def _sandbox(session: Any, job: dict[str, Any]) -> Any:
    return sandbox_for(session.settings_for(Path(job["root"])))


def _finish(session: Any, job: dict[str, Any], status: str, reason: str, slices: list[dict[str, Any]],
            rows: dict[str, dict[str, Any]], *, merged: str | None = None, notes: list[str] | None = None,
            report: str = "") -> dict[str, Any]:
    data = {"fanout_id": job["fanout_id"], "status": status, "reason": reason, "base_branch": job["base_branch"],
            "base_commit": job["base_commit"], "integration_branch": branch_name(job["fanout_id"], "integration"),
            "merged": merged, "notes": notes or [], "report": report, "plan": slices,
            "slices": [{**{"id": s["id"], "title": s["title"], "model": s["model"], "files_planned": s["files"],
                           "proof": s["proof"], "joined": s["joined"], "run_id": s["run_id"]}, **rows.get(s["id"], {})}
                       for s in slices]}
    data["cost_usd"] = session.store.cost(session.store.family(job["fanout_id"]))
    session.store.finish_run(job["fanout_id"], status if status != "partial" else "done", reason, result=data)
    session.emit(RunFinished(run_id=job["fanout_id"], status=status, reason=reason))
    return data


def record_cancelled(session: Any, job: dict[str, Any]) -> None:
    """Records a stopped fan-out as cancelled, every slice's work kept on its branch. Safe to call twice."""
    store, fid = session.store, job["fanout_id"]
    if store.get_run(fid)["status"] == "cancelled":
        return
    repo = open_repo(Path(job["root"]))
    remove_run_worktrees(repo, job["worktree_dir"], fid)
    delete_branch(repo, branch_name(fid, "base"))
    _drop_if_empty(repo, branch_name(fid, "integration"), job["base_commit"])
    plan = store.get_run(fid)["meta"].get("plan") or []
    _finish(session, job, "cancelled", "stopped by the user; every slice's work is kept on its branch", plan,
            {s["id"]: {"status": "cancelled"} for s in plan})
    for run_id in store.family(fid)[1:]:
        if store.get_run(run_id)["status"] == "running":
            store.finish_run(run_id, "cancelled", "the fan-out was stopped")
            store.emit(RunFinished(run_id=run_id, status="cancelled", reason="the fan-out was stopped"))


def _drop_if_empty(repo: Any, branch: str, base_commit: str) -> None:
    """Deletes an integration branch that holds nothing yet (a stop before the first merge)."""
    from ..workspaces._git import git

    tip = git(repo.root, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False).stdout.strip()
    if tip == base_commit:
        delete_branch(repo, branch)


def merge_integration(session: Any, fanout_id: str) -> str:
    """``flotilla merge RUN`` of a fan-out left for a person (``pick="manual"``): its integration branch."""
    record = session.store.get_run(fanout_id)
    result = record["result"]
    if result is None:
        raise UserError(f"fan-out {record['id']} has not finished ({record['status']}); wait for it, "
                        "or `flotilla resume` it if it crashed")
    if result.get("merged"):
        raise UserError(f"fan-out {record['id']} is merged already ({result['merged'][:10]})")
    if not any(s.get("status") == "merged" for s in result["slices"]):
        raise UserError(f"fan-out {record['id']} has no proven slice on its integration branch; nothing to merge")
    repo = open_repo(Path(record["meta"]["root"]))
    head = merge_branch(repo, result["integration_branch"], base_branch=result["base_branch"],
                        base_commit=result["base_commit"], message=f"flotilla fanout {record['id']}")
    delete_branch(repo, result["integration_branch"])
    result["merged"] = head
    session.store.finish_run(record["id"], record["status"], record["reason"], result=result)
    return head
