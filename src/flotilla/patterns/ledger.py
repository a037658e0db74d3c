"""The long-horizon ledger: an initializer plans the features, fresh worker sessions build them one at
a time, and flotilla, never the model, decides what passes.

The record is the ledger's run in the store (kind ``ledger``): the goal, the smoke test, each feature
with ``passes`` and its counters, the hashes of each feature's identity, the log and the sessions.
``features.json`` and ``PROGRESS.md`` in the repository are its rendering (``_ledger_files``).

- ``flotilla.ledger.init``: the initializer (an agent run in a worktree, ``features.json`` denied to
  its tools) answers through ``submit_features``, validated; each ``verify`` is run once, and one that
  already passes is flagged; the files are written and committed, the branch merged into the base.
- ``flotilla.ledger.work``: one session after another (``_ledger_session``), each a durable child
  with its id fixed in a recorded step, so that a resumed run never starts a session twice; it stops
  on the session cap, when every feature passes, when the budget is spent (the Session's meter of
  the work run refuses the call that would go over), or after ``max_dry`` sessions in a row without
  progress.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import UserError
from ..events import RunFinished, RunStarted
from ..kernel.agent_run import run_agent_in
from ..kernel.executor import Executor, task
from ..store import new_id
from ..workspaces import (create_worktree, exclude_flotilla, merge_branch, open_repo, require_branch, require_clean,
                          resolve_commit)
from ..workspaces.worktree import remove_run_worktrees
from . import _ledger_files as files
from . import _ledger_session  # noqa: F401 - registers flotilla.ledger.session
from ._ledger_files import DENY, sandbox
from ._race_plan import race_config

__all__ = ["LedgerConfig", "begin", "begin_init", "begin_work", "add_feature", "find", "status", "record_cancelled"]

INIT_PROMPT = """{goal}

You are the initializer of a long-horizon build: plan it, build nothing. Explore the repository, scaffold
only what a first session needs to start (a smoke test such as `init.sh` that passes when the project
builds and starts), and split the goal into at most {max_features} features in the order to build them.
Each feature's `verify` is a shell command, run at the repository root, that fails now and passes only
when the feature works. Then call submit_features; flotilla writes features.json and PROGRESS.md from it,
so do not write them yourself, and do not commit."""


class LedgerConfig(BaseModel):
    """The ``[ledger]`` section of flotilla.toml."""

    model_config = ConfigDict(extra="forbid")

    smoke: str | None = None
    """The smoke test command; when set, the initializer is not asked for one."""
    max_sessions: int = 20
    """The session cap of ``--until-done`` when ``--sessions`` is not given."""
    max_dry: int = 3
    """Sessions in a row without progress after which ``flotilla ledger work`` stops."""


def begin(session: Any, action: str, goal: str | None, **options: Any) -> tuple[str, dict[str, Any], str, Any]:
    """What ``Session.ledger`` starts for ``init`` or ``work``: the task, its job, its run id, and what
    records a stop (Ctrl-C) of it."""
    if action == "init":
        job = begin_init(session, goal or "", **options)
        return "flotilla.ledger.init", job, job["ledger_id"], lambda: _init_failed(session, job, "stopped by the user",
                                                                                   "cancelled")
    if action == "work":
        job = begin_work(session, **options)
        return "flotilla.ledger.work", job, job["work_id"], lambda: record_cancelled(session, job)
    raise UserError(f"no ledger action {action!r}: init, work, status or add")


def find(session: Any, *, required: bool = True) -> dict[str, Any] | None:
    """The project's ledger record (its newest), or a ``UserError`` saying how to make one."""
    root = str(open_repo(session.project).root)
    found = [r for r in session.store.list_runs(kind="ledger", limit=1000) if r["meta"].get("root") == root]
    ready = [r for r in found if r["meta"].get("state") == "ready"]
    if ready or not required:
        return (ready or found or [None])[0]
    raise UserError(f"{root} has no ledger yet: start one with `flotilla ledger init \"GOAL\"`")


def _check_budget(value: float | None) -> None:
    if value is not None and value <= 0:
        raise UserError(f"--budget-usd must be more than 0 (got {value})")


def _models(session: Any, model: Any) -> str:
    name = session.model_name(model) or session.settings.model
    if name and name not in session._models:  # resolves and has its key, before anything exists
        session.build_model(session.catalog.resolve(name))
    return name


def begin_init(session: Any, goal: str, *, model: str | None = None, agent: str = "implementer",
               max_features: int = 20, budget_usd: float | None = None, max_turns: int | None = None,
               allow_dirty: bool = False) -> dict[str, Any]:
    """Checks what an initializer needs before anything exists, records the ledger, returns its job."""
    if not goal or not goal.strip():
        raise UserError("a ledger needs a goal: say what to build, as an argument")
    if max_features < 1:
        raise UserError(f"--features must be at least 1 (got {max_features})")
    _check_budget(budget_usd)
    repo = open_repo(session.project)
    base_branch = require_branch(repo)
    if not allow_dirty:
        require_clean(repo)
    existing = find(session, required=False)
    if existing is not None and existing["meta"].get("state") == "ready":
        raise UserError(f"{repo.root} has a ledger already (run {existing['id']}): `flotilla ledger work` builds it, "
                        "`flotilla ledger add` adds a feature")
    if agent not in session.agents_for(repo.root):
        raise UserError(f"no agent named {agent!r} (--agent); flotilla agents lists them")
    race, config = race_config(session.settings), session.settings.section("ledger", LedgerConfig)
    wt_dir = exclude_flotilla(repo, race.worktree_dir)
    ledger_id = new_id()
    job = {"ledger_id": ledger_id, "root": str(repo.root), "goal": goal.strip(), "model": _models(session, model),
           "agent": agent, "max_features": max_features, "budget_usd": budget_usd, "max_turns": max_turns,
           "init_run_id": new_id(), "base_branch": base_branch, "base_commit": resolve_commit(repo, "HEAD"),
           "worktree_dir": wt_dir, "check_timeout_s": race.check_timeout_s, "smoke": config.smoke}
    session.store.create_run("ledger", goal.strip().splitlines()[0][:80], run_id=ledger_id, meta={
        "root": job["root"], "goal": job["goal"], "base_branch": base_branch, "state": "initializing",
        "worktree_dir": wt_dir, "check_timeout_s": race.check_timeout_s})
    session.emit(RunStarted(run_id=ledger_id, kind="ledger", title=goal[:80]))
    return job


@task("flotilla.ledger.init")
async def init_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    session = ex.session
    wt = await asyncio.to_thread(_worktree, job, job["ledger_id"], "init", job["base_commit"])
    answer = await run_agent_in(ex, job["agent"], INIT_PROMPT.format(goal=job["goal"], max_features=job["max_features"]),
                                wt.path, run_id=job["init_run_id"], parent_run_id=job["ledger_id"], model=job["model"],
                                budget_usd=job["budget_usd"], max_turns=job["max_turns"], project=Path(job["root"]),
                                submit=files.submission(job["max_features"], smoke_configured=bool(job["smoke"])),
                                deny=DENY)
    if answer.submitted is None:
        why = f"the initializer gave no valid feature list: {answer.error or answer.stop_reason}"
        return await ex.step("ledger:init-failed", lambda: _init_failed(session, job, why))
    return await ex.step("ledger:init", lambda: _record_init(session, job, answer.submitted))


def _worktree(job: dict[str, Any], parent: str, name: str, base: str) -> Any:
    return create_worktree(open_repo(Path(job["root"])), parent, name, base, directory=job["worktree_dir"])


def _init_failed(session: Any, job: dict[str, Any], why: str, status: str = "failed") -> dict[str, Any]:
    """An initializer that ended without a ledger (no valid answer, or stopped): nothing is left behind."""
    _drop_worktrees(job, job["ledger_id"])
    session.store.update_meta(job["ledger_id"], state=status)
    session.store.finish_run(job["ledger_id"], status, why)
    session.emit(RunFinished(run_id=job["ledger_id"], status=status, reason=why))
    return {"ledger_id": job["ledger_id"], "status": status, "reason": why}


async def _record_init(session: Any, job: dict[str, Any], submitted: dict[str, Any]) -> dict[str, Any]:
    """Writes, commits and merges the ledger; records it. Safe to run again: a recorded ledger is kept."""
    record = session.store.get_run(job["ledger_id"])
    if record["meta"].get("state") == "ready":
        return record["result"]
    wt = _worktree(job, job["ledger_id"], "init", job["base_commit"])
    features = [files.feature(f) for f in submitted["features"]]
    for f in features:  # a verify that passes before any work proves nothing
        done = await wt.run(f["verify"], timeout=job["check_timeout_s"], sandbox=sandbox(session, job["root"]))
        if done.passed:
            f["note"] = "its verify passed before any work: it proves nothing as written"
    smoke = job["smoke"] or submitted["smoke"].strip()
    smoke_run = await wt.run(smoke, timeout=job["check_timeout_s"], sandbox=sandbox(session, job["root"]))
    ledger = {"goal": job["goal"], "smoke": smoke, "features": features,
              "hashes": {f["id"]: files.identity_hash(f) for f in features}, "history": {}, "sessions": 0,
              "next_session": 1, "current_state": (submitted.get("current_state") or "").strip(),
              "log": [f"{_today()} init: {len(features)} features planned; smoke test "
                      f"{'green' if smoke_run.passed else 'red'}"]}
    files.write(wt.path, ledger)
    wt.commit(f"flotilla ledger: {len(features)} features planned\n\n{job['goal'][:2000]}")
    repo = open_repo(Path(job["root"]))
    head = merge_branch(repo, wt.branch, base_branch=job["base_branch"], base_commit=job["base_commit"],
                        message=f"flotilla ledger {job['ledger_id']}: initialized")
    result = {"ledger_id": job["ledger_id"], "status": "done", "merged": head, "features": features,
              "smoke": smoke, "smoke_passed": smoke_run.passed,
              "flagged": [f["id"] for f in features if f["note"]]}
    session.store.update_meta(job["ledger_id"], **ledger, state="ready")
    session.store.finish_run(job["ledger_id"], "done", f"{len(features)} features planned", result=result)
    _drop_worktrees(job, job["ledger_id"])
    session.emit(RunFinished(run_id=job["ledger_id"], status="done", reason=f"{len(features)} features planned"))
    return result


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def _drop_worktrees(job: dict[str, Any], parent: str) -> None:
    """Removes the worktrees (and their branches) made under ``parent``: merged work, or work given up."""
    remove_run_worktrees(open_repo(Path(job["root"])), job["worktree_dir"], parent, branches=True)


def begin_work(session: Any, *, sessions: int | None = None, until_done: bool = False, model: str | None = None,
               agent: str = "implementer", budget_usd: float | None = None, max_dry: int | None = None,
               max_turns: int | None = None, session_timeout_s: float | None = None) -> dict[str, Any]:
    """Checks what worker sessions need, records the work run, returns its job."""
    record = find(session)
    config = session.settings.section("ledger", LedgerConfig)
    for flag, value in (("--sessions", sessions), ("--max-dry", max_dry)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1 (got {value})")
    _check_budget(budget_usd)
    repo = open_repo(session.project)
    if require_branch(repo) != record["meta"]["base_branch"]:
        raise UserError(f"the ledger lives on {record['meta']['base_branch']!r} but {repo.branch!r} is checked out: "
                        f"`git switch {record['meta']['base_branch']}`")
    require_clean(repo)
    if agent not in session.agents_for(repo.root):
        raise UserError(f"no agent named {agent!r} (--agent); flotilla agents lists them")
    busy = [r["id"] for r in session.store.list_runs(kind="ledger-work", parent_id=record["id"]) if r["status"] == "running"]
    if busy:  # two at once would build the same feature
        raise UserError(f"`flotilla ledger work` is running already (run {busy[0]}): wait for it, or if it crashed, "
                        f"`flotilla resume {busy[0]}`")
    work_id = new_id()
    cap = sessions or (config.max_sessions if until_done else 1)
    job = {"work_id": work_id, "ledger_id": record["id"], "root": record["meta"]["root"],
           "base_branch": record["meta"]["base_branch"], "worktree_dir": record["meta"]["worktree_dir"],
           "check_timeout_s": record["meta"]["check_timeout_s"], "sessions": cap, "until_done": until_done,
           "model": _models(session, model), "agent": agent, "budget_usd": budget_usd,
           "max_dry": max_dry or config.max_dry, "max_turns": max_turns, "session_timeout_s": session_timeout_s}
    session.store.create_run("ledger-work", f"ledger: up to {cap} session(s)", parent_id=record["id"],
                             run_id=work_id, meta={k: job[k] for k in ("root", "sessions", "budget_usd", "max_dry")})
    session.emit(RunStarted(run_id=work_id, kind="ledger-work", title=f"up to {cap} session(s)",
                            parent_id=record["id"]))
    return job


@task("flotilla.ledger.work")
async def work_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    session, rows = ex.session, []
    while True:
        nxt = await ex.step(f"ledger:next:{len(rows)}", lambda: _next(session, job, rows))
        if nxt["stop"]:
            break
        handle = await ex.spawn("flotilla.ledger.session", nxt["session"], id=nxt["session"]["session_id"])
        rows.append(await ex.result(handle))
    return await ex.step("ledger:work-finished", lambda: _finish_work(session, job, rows, nxt["stop"]))


def _next(session: Any, job: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Why the work stops now, or the next session's job (its number and ids fixed here, once)."""
    store = session.store
    ledger = store.get_run(job["ledger_id"])["meta"]
    dry = 0
    for row in reversed(rows):
        if row["progress"]:
            break
        dry += 1
    spent = store.cost(store.family(job["work_id"]))
    stop = None
    if all(f["passes"] for f in ledger["features"]):
        stop = "every feature passes"
    elif job["budget_usd"] and (spent >= job["budget_usd"] or rows and rows[-1]["unit_status"] == "budget"):
        stop = f"the budget of ${job['budget_usd']:.2f} is spent (${spent:.4f})"
    elif dry >= job["max_dry"]:
        stop = f"no progress in {dry} sessions in a row"
    elif len(rows) >= job["sessions"]:
        stop = f"{len(rows)} session(s) run, the most asked for (--sessions)"
    if stop:
        return {"stop": stop}
    number = ledger.get("next_session", 1)
    store.update_meta(job["ledger_id"], next_session=number + 1)
    return {"stop": None, "session": {**{k: job[k] for k in ("work_id", "ledger_id", "root", "base_branch", "worktree_dir",
                                                             "check_timeout_s", "model", "agent", "budget_usd",
                                                             "max_turns", "session_timeout_s")},
                                      "number": number, "session_id": new_id(), "unit_run_id": new_id()}}


def _finish_work(session: Any, job: dict[str, Any], rows: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    store = session.store
    ledger = store.get_run(job["ledger_id"])["meta"]
    done = all(f["passes"] for f in ledger["features"])
    result = {"work_id": job["work_id"], "ledger_id": job["ledger_id"], "stop": stop, "sessions": rows,
              "all_pass": done, "passing": sum(f["passes"] for f in ledger["features"]),
              "features": len(ledger["features"]), "cost_usd": store.cost(store.family(job["work_id"]))}
    status = "done" if done or not job["until_done"] else "limited"
    store.finish_run(job["work_id"], status, stop, result=result)
    session.emit(RunFinished(run_id=job["work_id"], status=status, reason=stop))
    return result


def record_cancelled(session: Any, job: dict[str, Any]) -> None:
    """A stopped work run: recorded as cancelled, its session worktrees removed (the branches kept)."""
    store = session.store
    if store.get_run(job["work_id"])["status"] == "cancelled":
        return
    remove_run_worktrees(open_repo(Path(job["root"])), job["worktree_dir"], job["work_id"])
    store.finish_run(job["work_id"], "cancelled", "stopped by the user")
    for run_id in store.family(job["work_id"])[1:]:
        if store.get_run(run_id)["status"] == "running":
            store.finish_run(run_id, "cancelled", "the ledger's work was stopped")


def status(session: Any) -> dict[str, Any]:
    """The ledger as the status table shows it: features, sessions so far, cost."""
    record = find(session)
    meta = record["meta"]
    cost = session.store.cost(session.store.family(record["id"]))
    return {"ledger_id": record["id"], "goal": meta["goal"], "smoke": meta["smoke"], "features": meta["features"],
            "sessions": meta["sessions"], "cost_usd": cost, "log": meta["log"], "table": files.status_table(meta)}


async def add_feature(session: Any, name: str, *, verify: str, description: str | None = None,
                      feature_id: str | None = None) -> dict[str, Any]:
    """``flotilla ledger add``: a person adds a feature, the one way features grow; recorded and committed.
    Its verify runs once, and one that passes already is flagged, as at init."""
    record = find(session)
    meta = record["meta"]
    raw = {"id": feature_id or _slug(name, {f["id"] for f in meta["features"]}), "name": name,
           "description": description or name, "verify": verify}
    errors = files.feature_errors([raw], {f["id"] for f in meta["features"]})
    if errors:
        raise UserError("the feature was not added: " + "; ".join(e.replace("feature 1", "it") for e in errors))
    repo = open_repo(session.project)
    if require_branch(repo) != meta["base_branch"]:
        raise UserError(f"the ledger lives on {meta['base_branch']!r}: `git switch {meta['base_branch']}` first")
    new = files.feature(raw)
    ledger = {**meta, "features": [*meta["features"], new], "hashes": {**meta["hashes"], new["id"]:
                                                                        files.identity_hash(new)},
              "log": [*meta["log"], f"{_today()} added by a person: `{new['id']}` {new['name']}"]}
    job = {"root": meta["root"], "worktree_dir": meta["worktree_dir"]}
    add_id, head = new_id(), resolve_commit(repo, "HEAD")
    wt = _worktree(job, add_id, "add", head)
    try:
        done = await wt.run(new["verify"], timeout=meta["check_timeout_s"], sandbox=sandbox(session, meta["root"]))
        if done.passed:
            new["note"] = "its verify passed before any work: it proves nothing as written"
        files.write(wt.path, ledger)
        wt.commit(f"flotilla ledger: feature {new['id']} added by a person")
        merge_branch(repo, wt.branch, base_branch=meta["base_branch"], base_commit=head,
                     message=f"flotilla ledger: add {new['id']}")
    finally:
        _drop_worktrees(job, add_id)
    session.store.update_meta(record["id"], features=ledger["features"], hashes=ledger["hashes"], log=ledger["log"])
    return new


def _slug(name: str, taken: set[str]) -> str:
    import re

    base = re.sub(r"[^A-Za-z0-9]+", "-", name.lower()).strip("-")[:32] or "feature"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug

