"""One worker session of a ledger: a fresh agent run on the first failing feature, proven by flotilla.

The steps, each done once however often the session is resumed:

1. ``ledger:start``: a worktree from the base branch's head; its ``features.json`` is compared with
   the record (the hashes taken when each feature entered the ledger), and anything changed between
   sessions (a person's commit, a ``sed``) is reverted there and reported; the smoke test runs;
   the target is the record's first failing feature;
2. the worker: a work unit (a new agent run, its instructions only, never an earlier transcript),
   ``features.json`` denied to its Write and Edit;
3. ``ledger:checks``: flotilla runs the target's ``verify`` (the record's, not the file's), the smoke
   test, and the verify of every feature that passed before (a regression);
4. ``ledger:record``: the files are written from the updated record (so the worker's edits to
   ``features.json``, by any means, are reverted and reported), committed and merged into the base;
   the target passes only when its verify and the smoke test both passed; a regressed feature is
   flipped back with a note; the session is recorded under its number, once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from ..errors import RepositoryError
from ..events import LedgerSessionEnded
from ..kernel.executor import Executor, task
from ..kernel.unit import UnitResult, Worker, WorkUnit
from ..workspaces import create_worktree, merge_branch, open_repo, remove_worktree, resolve_commit
from ..workspaces._git import git
from ..workspaces.worktree import worktree_root
from . import _ledger_files as files
from ._ledger_files import DENY, sandbox

WORK_PROMPT = """You are session {number} of a long-horizon build, and you start fresh: what earlier sessions
did is in PROGRESS.md and in `git log`.

1. Read PROGRESS.md, then run `git log --oneline -20`.
2. Run the smoke test first: `{smoke}`. {smoke_state}
3. Implement one feature, the first that does not pass yet: `{id}`, {name}: {description}
   It is done when `{verify}` passes.{last_failure}
4. Under "## Notes" in PROGRESS.md, write what the next session should know. End with a short summary.

features.json is flotilla's record: read it, never change it; flotilla runs the verify itself and sets
`passes`. Work in place and do not commit: flotilla commits your work when you end."""


@task("flotilla.ledger.session")
async def session_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    session = ex.session
    start = await ex.step("ledger:start", lambda: _start(session, job))
    handle = await ex.spawn("flotilla.unit", _unit(job, start).to_json(), id=job["unit_run_id"])
    unit = UnitResult.from_dict(await ex.result(handle))
    checks = await ex.step("ledger:checks", lambda: _checks(session, job, start))
    return await ex.step("ledger:record", lambda: asyncio.to_thread(_record, session, job, start, unit, checks))


def _name(job: dict[str, Any]) -> str:
    return f"s{job['number']}"


def _worktree(job: dict[str, Any], base: str) -> Any:
    return create_worktree(open_repo(Path(job["root"])), job["work_id"], _name(job), base,
                           directory=job["worktree_dir"])


async def _start(session: Any, job: dict[str, Any]) -> dict[str, Any]:
    ledger = session.store.get_run(job["ledger_id"])["meta"]
    base = resolve_commit(open_repo(Path(job["root"])), job["base_branch"])
    wt = await asyncio.to_thread(_worktree, job, base)
    reverted = files.differences(files.read(wt.path, files.FEATURES), ledger["features"], ledger["hashes"])
    if reverted:
        files.write(wt.path, ledger)
        wt.commit(f"flotilla ledger: features.json reverted before session {job['number']}\n\n" + "\n".join(reverted))
    smoke = await wt.run(ledger["smoke"], timeout=job["check_timeout_s"], sandbox=sandbox(session, job["root"]))
    git(wt.path, "reset", "-q", "--hard")  # what the smoke test left behind is not the worker's work
    git(wt.path, "clean", "-q", "-fd")
    target = next(f for f in ledger["features"] if not f["passes"])
    return {"base": base, "head": wt.head(), "reverted": reverted, "smoke": smoke.to_dict(), "target": target,
            "smoke_cmd": ledger["smoke"]}


def _unit(job: dict[str, Any], start: dict[str, Any]) -> WorkUnit:
    t, smoke = start["target"], start["smoke"]
    state = ("It passes now." if smoke["passed"] else
             "It FAILS now: fixing it comes first, before the feature. Its output ended with:\n"
             + _indent(smoke.get("tail") or smoke.get("summary") or ""))
    last = f"\n   The last attempt failed: {t['last_failure']}" if t["last_failure"] else ""
    prompt = WORK_PROMPT.format(number=job["number"], smoke=start["smoke_cmd"], smoke_state=state, id=t["id"],
                                name=t["name"], description=t["description"], verify=t["verify"], last_failure=last)
    return WorkUnit(name=_name(job), parent_id=job["work_id"], run_id=job["unit_run_id"], root=job["root"],
                    base_commit=start["head"], instructions=prompt, worker=Worker(agent=job["agent"], model=job["model"]),
                    worktree_dir=job["worktree_dir"], max_turns=job["max_turns"], timeout_s=job["session_timeout_s"],
                    check_timeout_s=job["check_timeout_s"], budget_usd=job["budget_usd"], budget_scope=job["work_id"],
                    deny=list(DENY))


def _indent(text: str) -> str:
    return "\n".join("   | " + line for line in text.strip().splitlines()[-15:])


async def _checks(session: Any, job: dict[str, Any], start: dict[str, Any]) -> dict[str, Any]:
    """The record's verify of the target, the smoke test, and every passing feature's verify, on the branch."""
    ledger = session.store.get_run(job["ledger_id"])["meta"]
    wt = await asyncio.to_thread(_worktree, job, start["head"])
    box, timeout = sandbox(session, job["root"]), job["check_timeout_s"]
    verify = await wt.run(start["target"]["verify"], timeout=timeout, sandbox=box)
    smoke = await wt.run(ledger["smoke"], timeout=timeout, sandbox=box)
    earlier = {}
    for f in ledger["features"]:
        if f["passes"]:
            earlier[f["id"]] = (await wt.run(f["verify"], timeout=timeout, sandbox=box)).to_dict()
    git(wt.path, "reset", "-q", "--hard")
    git(wt.path, "clean", "-q", "-fd")
    return {"verify": verify.to_dict(), "smoke": smoke.to_dict(), "earlier": earlier,
            "tampered": files.differences(files.read(wt.path, files.FEATURES), ledger["features"], ledger["hashes"])}


def _record(session: Any, job: dict[str, Any], start: dict[str, Any], unit: UnitResult,
            checks: dict[str, Any]) -> dict[str, Any]:
    """Applies the session to the record, lands it on the base branch, records it once under its number."""
    store, n = session.store, job["number"]
    ledger = store.get_run(job["ledger_id"])["meta"]
    if str(n) in ledger["history"]:  # recorded already (a crash after that): only the clean-up may be left
        _drop(job)
        return ledger["history"][str(n)]
    features = [dict(f) for f in ledger["features"]]
    by_id = {f["id"]: f for f in features}
    tid = start["target"]["id"]
    target, verify, smoke = by_id[tid], checks["verify"], checks["smoke"]
    passed = verify["passed"] and smoke["passed"]
    target["sessions"] += 1
    target["cost_usd"] = round(target["cost_usd"] + (unit.cost_usd or 0.0), 6)
    failure = "" if passed else "; ".join(
        [f"verify `{target['verify']}` failed: {verify['summary']}"] * (not verify["passed"])
        + [f"smoke test `{ledger['smoke']}` failed: {smoke['summary']}"] * (not smoke["passed"]))
    target.update(passes=passed, last_failure=failure)
    if passed:
        target["note"] = ""
    regressed = [i for i, done in checks["earlier"].items() if not done["passed"] and i != tid]
    for i in regressed:
        by_id[i].update(passes=False, note=f"regressed in session {n}",
                        last_failure=f"its verify failed after session {n}: {checks['earlier'][i]['summary']}")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    log = [f"{day} session {n}: features.json had been changed, reverted: {'; '.join(start['reverted'])}"] \
        * bool(start["reverted"])
    log += [f"{day} session {n}: the agent changed features.json, reverted: {'; '.join(checks['tampered'])}"] \
        * bool(checks["tampered"])
    log.append(f"{day} session {n}: `{tid}` " + ("passes (verify and smoke test green)" if passed else f"still fails: {failure}"))
    log += [f"{day} session {n}: `{i}` regressed (its verify fails again); set back to not passing" for i in regressed]
    summary = " ".join(unit.output_tail.split())[:300] if unit.output_tail else ""
    updated = {**ledger, "features": features, "log": [*ledger["log"], *log],
               "current_state": f"Session {n} worked on `{tid}`: {'it passes' if passed else 'it does not pass yet'}."}
    wt = _worktree(job, start["head"])
    files.write(wt.path, updated)
    wt.commit(f"flotilla ledger: session {n}: {tid} {'passes' if passed else 'still fails'}")
    merge_error = None
    try:
        merge_branch(open_repo(Path(job["root"])), wt.branch, base_branch=job["base_branch"], base_commit=start["base"],
                     message=f"flotilla ledger: session {n} ({tid})")
    except RepositoryError as exc:  # the record stays as it was: nothing of this session reached the base
        merge_error, updated = str(exc), {**ledger, "log": [*ledger["log"], f"{day} session {n}: not merged: {exc}"]}
    row = {"number": n, "feature": tid, "passed": passed and merge_error is None, "unit_status": unit.status,
           "unit_error": unit.error, "cost_usd": unit.cost_usd or 0.0, "smoke_before": start["smoke"]["passed"],
           "smoke_after": smoke["passed"], "verify": verify["passed"], "reverted_before": start["reverted"],
           "tampered": checks["tampered"], "regressed": regressed, "merge_error": merge_error,
           "run_id": unit.run_id, "summary": summary, "denials": _denials(store, unit.run_id)}
    row["progress"] = merge_error is None and (passed or (not row["smoke_before"] and row["smoke_after"]))
    history = {**ledger["history"], str(n): row}
    store.update_meta(job["ledger_id"], features=updated["features"], log=updated["log"],
                      current_state=updated["current_state"], history=history, sessions=len(history))
    _drop(job)
    session.emit(LedgerSessionEnded(run_id=job["work_id"], session=n, feature=tid, passed=row["passed"],
                                    reverted=start["reverted"] + checks["tampered"], regressed=regressed))
    return row


def _drop(job: dict[str, Any]) -> None:
    """Removes the session's worktree, and its branch unless it holds work the base did not take."""
    repo = open_repo(Path(job["root"]))
    branch = f"flotilla/{job['work_id']}/{_name(job)}"
    merged = git(repo.root, "merge-base", "--is-ancestor", branch, job["base_branch"], check=False).returncode == 0
    remove_worktree(repo, worktree_root(repo, job["worktree_dir"]) / job["work_id"] / _name(job),
                    branch=branch if merged else None)


def _denials(store: Any, run_id: str) -> list[str]:
    return [e["reason"] for e in store.events(run_id, kind="ToolDenied")]
