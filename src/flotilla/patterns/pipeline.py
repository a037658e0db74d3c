"""A role pipeline: stages from a pipeline file (``_pipeline_spec``), with a durable approval gate and the
findings loop at its end, on one branch. Nothing is merged: ``flotilla merge RUN`` is the person's step.

``begin`` checks the file, the agents and the models before anything exists and fixes every stage's
run id; the ``flotilla.pipeline`` task then runs the stages in order, each part a step or a child task:

- a **plan** stage (read-only, whatever its agent file says) answers through ``submit_plan`` (the plan
  in Markdown and the files it will touch); the plan is stored with its sha256 and committed as
  ``PLAN.md``; a **gate** after it waits (``ex.wait_signal``: durably, so the process may exit and
  ``flotilla approve RUN`` or ``flotilla reject RUN`` from any shell continues or ends it);
- a **work** stage is a work unit on the pipeline's worktree (``flotilla/<run>/main``), given only
  the task, the approved plan and earlier stages' summaries (its ``inputs``), never a transcript; a
  parallel group runs its stages at once, each on its own branch from the pipeline's head, merged
  back one by one before the next stage (a conflict is reported and leaves that stage on its branch);
- a **review** stage is the findings loop (``_findings_loop``) on the pipeline branch, the ``fix``
  stages' agents fixing its blocking findings.

Every stage's files are compared with the plan's: one touching a file the plan did not declare is
flagged in the report ("outside the approved plan: src/x.py").
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from ..agents.submit import Submission
from ..errors import UserError
from ..events import RunFinished, RunStarted
from ..kernel.agent_run import run_agent_in
from ..kernel.executor import Executor, task
from ..kernel.unit import UnitResult, Worker, WorkUnit
from ..store import new_id
from ._begun import Begun
from ..workspaces import (create_worktree, delete_branch, exclude_flotilla, open_repo, remove_worktree, require_branch,
                          require_clean, resolve_commit)
from ..workspaces._git import git
from ..workspaces.integration import merge_one
from ..workspaces.worktree import branch_name, remove_run_worktrees, worktree_root
from . import _pipeline_spec as spec_file
from ._fanout_report import summary_of
from ._findings import review_config
from ._findings_loop import findings_loop
from ._gate import wait_at_gate
from ._race_plan import race_config

__all__ = ["Begun", "begin", "record_cancelled", "waiting"]

PLAN_PROMPT = """{task}

You are the {name} stage of a pipeline: explore the repository (read-only) and write the plan the next
stages will implement. {instructions}
Then call submit_plan with the plan in Markdown and the files it will change. A person approves the plan
before anyone implements it."""

STAGE_PROMPT = """{inputs}

You are the {name} stage of a pipeline. {instructions}
You are working in a git worktree of the project, on the pipeline's branch. Change files in place; do not
commit (flotilla commits your work when you finish). End with a short summary of what you did: the later
stages see only that."""

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["plan", "files"],
    "properties": {"plan": {"type": "string", "description": "The plan, in Markdown: what changes where, and why."},
                   "files": {"type": "array", "items": {"type": "string"},
                             "description": "Repository-relative paths the plan will change or add."},
                   "summary": {"type": "string", "description": "One line."}}}


def plan_errors(plan: dict[str, Any]) -> list[str]:
    errors = []
    if not isinstance(plan.get("plan"), str) or not plan["plan"].strip():
        errors.append("`plan` must be the plan in Markdown (a non-empty string)")
    files = plan.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) and f.strip() for f in files):
        errors.append("`files` must list the paths the plan changes (strings)")
    elif any(f.startswith("/") or ".." in f.split("/") for f in files):
        errors.append("`files` must be relative paths inside the repository")
    return errors


PLAN_SUBMISSION = Submission(name="submit_plan", input_schema=PLAN_SCHEMA, validate=plan_errors,
                             description="Submit the plan for approval: Markdown, and the files it changes.")


def begin(session: Any, task: str, *, name: str = "default", model: str | None = None,
          models: dict[str, str] | None = None, yes: bool = False, check: str | None = None, base: str = "HEAD",
          budget_usd: float | None = None, max_turns: int | None = None, allow_dirty: bool = False) -> Begun:
    """Checks everything a pipeline needs before anything exists, then records it."""
    if not task or not task.strip():
        raise UserError("a pipeline needs a task: say what to build, as an argument")
    repo = open_repo(session.project)
    spec = spec_file.load(repo.root, name)
    models = dict(models or {})
    unknown = set(models) - {s.name for s in spec.stage}
    if unknown:
        raise UserError(f"--stage-model names no stage of {name!r}: {', '.join(sorted(unknown))} "
                        f"(its stages: {', '.join(s.name for s in spec.stage)})")
    known = session.agents_for(repo.root)
    stages = []
    for s in spec.stage:
        if s.agent not in known:
            raise UserError(f"pipeline {name!r}, stage {s.name!r}: no agent named {s.agent!r}; flotilla agents: "
                            f"{', '.join(sorted(known))}")
        chosen = models.get(s.name) or s.model or model
        if chosen and chosen not in session._models:
            session.build_model(session.catalog.resolve(chosen))
        stages.append({**s.model_dump(), "model": chosen or "", "run_id": new_id()})
    base_branch = require_branch(repo)
    if not allow_dirty:
        require_clean(repo)
    races = race_config(session.settings)
    wt_dir = exclude_flotilla(repo, races.worktree_dir)
    pid = new_id()
    job = {"pipeline_id": pid, "name": name, "root": str(repo.root), "task": task.strip(), "stages": stages,
           "yes": yes, "check": check or races.check, "setup": races.setup, "base_branch": base_branch,
           "base_commit": resolve_commit(repo, base), "worktree_dir": wt_dir, "check_timeout_s": races.check_timeout_s,
           "budget_usd": budget_usd, "max_turns": max_turns, "review": review_config(session.settings).model_dump()}
    session.store.create_run("pipeline", task.strip().splitlines()[0][:80], run_id=pid, meta={
        k: job[k] for k in ("name", "root", "task", "base_branch", "base_commit", "check")}
        | {"stages": [{k: s[k] for k in ("name", "agent", "kind", "model", "group", "gate", "fix", "run_id")}
                      for s in stages],
           "state": "running"})
    session.store.emit(RunStarted(run_id=pid, kind="pipeline", title=task[:80]))
    return Begun(pid, "pipeline", job, job["task"])


@task("flotilla.pipeline")
async def pipeline_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    session, pid = ex.session, job["pipeline_id"]
    await ex.step("pipeline:worktree", lambda: asyncio.to_thread(_main_worktree, job))
    state: dict[str, Any] = {"plan": None, "rows": [], "approvals": [], "review": None}
    for group in _groups(job):
        first = group[0]
        if first["kind"] == "plan":
            planned = await _plan(ex, job, first)
            if planned is None:
                return await ex.step("pipeline:finish", lambda: _finish(session, job, state, "failed",
                                                                         f"stage {first['name']} gave no valid plan"))
            state["plan"] = planned
        elif first["kind"] == "review":
            state["review"] = await _review(ex, job, first, state)
        elif len(group) == 1:
            state["rows"].append(await _work(ex, job, first, state))
        else:
            state["rows"].extend(await _parallel(ex, job, group, state))
        failed = [r for r in state["rows"] if r["status"] not in ("done", "merged")]
        if failed:
            return await ex.step("pipeline:finish", lambda: _finish(session, job, state, "failed",
                                                                     f"stage {failed[0]['stage']} ended "
                                                                     f"{failed[0]['status']}"))
        if any(s["gate"] for s in group) and not job["yes"]:
            plan = state["plan"] or {}
            answer = await wait_at_gate(ex, pid, group[-1]["name"], summary=plan.get("summary") or "",
                                        subject={"plan_sha256": plan.get("sha256")})
            state["approvals"].append(answer)
            if not answer["approved"]:
                return await ex.step("pipeline:finish", lambda: _finish(session, job, state, "rejected",
                                                                         f"rejected at {group[-1]['name']}: "
                                                                         f"{answer.get('reason') or 'no reason given'}"))
    ended = (state["review"] or {}).get("ended")
    status = "failed" if ended == "failed" else "done"
    reason = f"every stage ran; review: {ended}" if ended else "every stage ran"
    return await ex.step("pipeline:finish", lambda: _finish(session, job, state, status, reason))


def waiting(session: Any, begun: Begun) -> dict[str, Any]:
    """The report of a pipeline stopped at its gate (``Session.pipeline(detach=True)``)."""
    meta = session.store.get_run(begun.run_id)["meta"]
    return {"pipeline_id": begun.run_id, "name": begun.job["name"], "status": "waiting",
            "reason": f"waiting for approval after {meta['gate']}", "plan": meta.get("plan"), "stages": [],
            "approvals": [], "review": None, "notes": [], "task": begun.job["task"]}


def _groups(job: dict[str, Any]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for s in job["stages"]:
        if s["group"] and out and out[-1][0]["group"] == s["group"]:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _path(job: dict[str, Any], name: str = "main") -> Path:
    return worktree_root(open_repo(Path(job["root"])), job["worktree_dir"]) / job["pipeline_id"] / name


def _head(job: dict[str, Any], name: str = "main") -> str:
    return git(job["root"], "rev-parse", f"refs/heads/{branch_name(job['pipeline_id'], name)}").stdout.strip()


def _main_worktree(job: dict[str, Any]) -> None:
    create_worktree(open_repo(Path(job["root"])), job["pipeline_id"], "main", job["base_commit"],
                    directory=job["worktree_dir"])


async def _plan(ex: Executor, job: dict[str, Any], stage: dict[str, Any]) -> dict[str, Any] | None:
    result = await run_agent_in(ex, stage["agent"], PLAN_PROMPT.format(task=job["task"], name=stage["name"],
                                                                        instructions=stage["instructions"]),
                                _path(job), run_id=stage["run_id"], parent_run_id=job["pipeline_id"],
                                model=stage["model"] or None, read_only=True, budget_usd=job["budget_usd"],
                                budget_scope=job["pipeline_id"], max_turns=job["max_turns"],
                                project=Path(job["root"]), submit=PLAN_SUBMISSION)
    if result.submitted is None:
        return None
    return await ex.step(f"pipeline:plan:{stage['name']}", lambda: _store_plan(ex.session, job, stage, result.submitted))


def _store_plan(session: Any, job: dict[str, Any], stage: dict[str, Any], submitted: dict[str, Any]) -> dict[str, Any]:
    """The plan: PLAN.md committed on the pipeline branch, stored in the run with its hash."""
    text = submitted["plan"].strip() + "\n"
    files = sorted({f.strip().removeprefix("./") for f in submitted["files"]})
    path = _path(job)
    (path / "PLAN.md").write_text(text)
    git(path, "add", "PLAN.md")
    if git(path, "diff", "--cached", "--quiet", check=False).returncode:
        from ..workspaces._git import identity_args

        git(path, *identity_args(path), "commit", "-q", "--no-verify", "-m",
            f"flotilla pipeline {job['pipeline_id']}: the plan ({stage['name']})")
    plan = {"stage": stage["name"], "text": text, "files": files, "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "summary": submitted.get("summary") or ""}
    session.store.update_meta(job["pipeline_id"], plan=plan)
    return plan


def _inputs(job: dict[str, Any], stage: dict[str, Any], state: dict[str, Any]) -> str:
    parts = []
    if "task" in stage["inputs"]:
        parts.append(f"The task:\n{job['task']}")
    if "plan" in stage["inputs"] and state["plan"]:
        notes = [a["note"] for a in state["approvals"] if a.get("note")]
        parts.append(f"The approved plan (PLAN.md):\n{state['plan']['text']}"
                     + (f"\nThe approver's note: {notes[-1]}" if notes else ""))
    if "summaries" in stage["inputs"] and state["rows"]:
        parts.append("What the earlier stages did:\n" + "\n".join(f"- {r['stage']}: {r['summary'] or r['status']}"
                                                                    for r in state["rows"]))
    return "\n\n".join(parts)


def _unit(job: dict[str, Any], stage: dict[str, Any], state: dict[str, Any], name: str, base: str) -> WorkUnit:
    prompt = STAGE_PROMPT.format(inputs=_inputs(job, stage, state), name=stage["name"],
                                 instructions=stage["instructions"])
    return WorkUnit(name=name, parent_id=job["pipeline_id"], run_id=stage["run_id"], root=job["root"], base_commit=base,
                    instructions=prompt, worker=Worker(agent=stage["agent"], model=stage["model"]),
                    check=job["check"], setup=job["setup"], worktree_dir=job["worktree_dir"], max_turns=job["max_turns"],
                    check_timeout_s=job["check_timeout_s"], budget_usd=job["budget_usd"],
                    budget_scope=job["pipeline_id"])


async def _work(ex: Executor, job: dict[str, Any], stage: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    before = await ex.step(f"pipeline:before:{stage['name']}", lambda: _head(job))
    unit = _unit(job, stage, state, "main", job["base_commit"])
    result = UnitResult.from_dict(await ex.result(await ex.spawn("flotilla.unit", unit.to_json(), id=unit.run_id)))
    return await ex.step(f"pipeline:row:{stage['name']}", lambda: _row(ex.session, job, stage, result, before, state))


async def _parallel(ex: Executor, job: dict[str, Any], group: list[dict[str, Any]],
                    state: dict[str, Any]) -> list[dict[str, Any]]:
    """The group's stages at once, each on its own branch from the pipeline's head, then merged back."""
    head = await ex.step(f"pipeline:before:{group[0]['group']}", lambda: _head(job))
    handles = []
    for s in group:
        unit = _unit(job, s, state, s["name"], head)
        handles.append(await ex.spawn("flotilla.unit", unit.to_json(), id=unit.run_id))
    results = [UnitResult.from_dict(await ex.result(h)) for h in handles]
    rows = []
    for s, result in zip(group, results):
        row = await ex.step(f"pipeline:row:{s['name']}", lambda s=s, r=result: _row(ex.session, job, s, r, head, state))
        if row["status"] == "done":
            merged = await ex.step(f"pipeline:merge:{s['name']}", lambda s=s: _merge(job, s))
            row.update(merged)
        rows.append(row)
    return rows


async def _merge(job: dict[str, Any], stage: dict[str, Any]) -> dict[str, Any]:
    repo = open_repo(Path(job["root"]))
    main = await asyncio.to_thread(create_worktree, repo, job["pipeline_id"], "main", job["base_commit"],
                                   directory=job["worktree_dir"])
    branch = branch_name(job["pipeline_id"], stage["name"])
    done = await merge_one(main, branch, main.head(), message=f"flotilla pipeline {job['pipeline_id']}: "
                                                               f"{stage['name']}")
    if not done.merged:
        return {"status": "conflict", "merge_reason": done.reason}
    path = _path(job, stage["name"])
    if path.is_dir():
        await asyncio.to_thread(remove_worktree, repo, path)
    await asyncio.to_thread(delete_branch, repo, branch)
    return {"status": "merged"}


def _row(session: Any, job: dict[str, Any], stage: dict[str, Any], result: UnitResult, before: str,
         state: dict[str, Any]) -> dict[str, Any]:
    files = [p for p in git(job["root"], "diff", "--name-only", before, result.commit or before).stdout.splitlines() if p]
    planned = set((state["plan"] or {}).get("files") or [])
    outside = [f for f in files if state["plan"] and f not in planned and f != "PLAN.md"]
    return {"stage": stage["name"], "agent": stage["agent"], "model": stage["model"], "run_id": stage["run_id"],
            "status": result.status, "error": result.error, "files": files, "outside_plan": outside,
            "check": result.check, "summary": summary_of(session, stage["run_id"]), "cost_usd": result.cost_usd}


async def _review(ex: Executor, job: dict[str, Any], stage: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    fixers = [{"agent": s["agent"], "model": s["model"]} for name in stage["fix"]
              for s in job["stages"] if s["name"] == name]
    config = {**job["review"], **({"rounds": stage["rounds"]} if stage["rounds"] else {})}
    plan = state["plan"]["text"] if state["plan"] else ""
    return await findings_loop(ex, {
        "key": f"pipeline:{stage['name']}", "parent_id": job["pipeline_id"], "root": job["root"], "worktree": "main",
        "worktree_dir": job["worktree_dir"], "base_commit": job["base_commit"],
        "reviewer": {"agent": stage["agent"], "model": stage["model"]}, "fixers": fixers, "config": config,
        "check": job["check"], "setup": job["setup"], "check_timeout_s": job["check_timeout_s"],
        "max_turns": job["max_turns"], "budget_usd": job["budget_usd"],
        "context": f"The task:\n{job['task']}\n\nThe approved plan:\n{plan}\n\n{stage['instructions']}".strip()})


def _finish(session: Any, job: dict[str, Any], state: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
    store, pid = session.store, job["pipeline_id"]
    repo = open_repo(Path(job["root"]))
    remove_run_worktrees(repo, job["worktree_dir"], pid)
    branch = branch_name(pid, "main")
    head = _head(job)
    notes = [f"outside the approved plan ({r['stage']}): {', '.join(r['outside_plan'])}"
             for r in state["rows"] if r["outside_plan"]]
    notes += [f"stage {r['stage']} did not merge: {r.get('merge_reason')}; its work is on "
              f"{branch_name(pid, r['stage'])}" for r in state["rows"] if r["status"] == "conflict"]
    if status == "done" and head != job["base_commit"]:
        notes.append(f"nothing was merged: review {branch} and merge it with `flotilla merge {pid}`")
    data = {"pipeline_id": pid, "name": job["name"], "status": status, "reason": reason, "task": job["task"],
            "plan": state["plan"], "approvals": state["approvals"], "stages": state["rows"], "review": state["review"],
            "branch": branch, "head": head, "base_branch": job["base_branch"], "base_commit": job["base_commit"],
            "cost_usd": store.cost(store.family(pid)), "notes": notes, "merged": None}
    store.update_meta(pid, state=status, gate=None)
    store.finish_run(pid, status, reason, result=data)
    session.emit(RunFinished(run_id=pid, status=status, reason=reason))
    return data


def record_cancelled(session: Any, job: dict[str, Any]) -> None:
    """A stopped pipeline: worktrees removed, branches kept. Safe to call twice."""
    store, pid = session.store, job["pipeline_id"]
    if store.get_run(pid)["status"] == "cancelled":
        return
    repo = open_repo(Path(job["root"]))
    remove_run_worktrees(repo, job["worktree_dir"], pid)
    store.update_meta(pid, state="cancelled", gate=None)
    store.finish_run(pid, "cancelled", "stopped by the user; the work is kept on its branches")
    session.emit(RunFinished(run_id=pid, status="cancelled", reason="stopped by the user"))
    for run_id in store.family(pid)[1:]:
        if store.get_run(run_id)["status"] == "running":
            store.finish_run(run_id, "cancelled", "the pipeline was stopped")
