"""Race: the same spec in N git worktrees, each attempt verified by the project's check, ranked, the winner merged.

Written once, on the kernel: ``begin`` checks the options and the repository and records the race;
the ``flotilla.race`` task runs each attempt as a work unit (at most ``parallel`` at once, or
enqueued for ``flotilla worker`` processes), then selects the winner (a strategy of ``selection``:
checks, checks+judge, pairwise, vote), ranks, cleans up and merges, each a step.
The same code runs in memory or durably (the executor decides): killed mid-race, ``flotilla resume``
finishes it, finished attempts staying finished. Ctrl-C or SIGTERM stops every attempt, keeps their
branches and records the race as cancelled, for good.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RepositoryError, UserError
from ..events import RunFinished, RunStarted
from ..kernel.executor import Executor, task
from ..kernel.unit import WorkUnit
from ..store import new_id
from ._begun import Begun
from ..workspaces import (branch_diff, delete_branch, exclude_flotilla, kept_diff, merge_branch, open_repo,
                          remove_worktree, require_branch, require_clean, resolve_commit)
from ..workspaces.worktree import branch_name, worktree_root
from ._attempt import Attempt, AttemptPlan
from ._preflight import preflight
from ._race_plan import RaceConfig, build_plans, estimate, race_config
from ._race_report import report
from ._race_select import apply_selection, choose_strategy, run_selection
from .selection import Selection
from ._ranking import rank
from ._worker import ATTEMPTS_QUEUE, WorkerConfig, worker_config

__all__ = ["ATTEMPTS_QUEUE", "Attempt", "AttemptPlan", "RaceConfig", "RaceOutcome", "WorkerConfig", "begin",
           "build_plans", "estimate", "race_config", "report", "worker_config"]

MAX_STORED_DIFF = 200_000
TASK_FOOTER = """

You are working in a git worktree of the project, on a branch of your own. Change files in place; do not
commit (flotilla commits your work when you finish). When you are done, this check must pass: `{check}`"""


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
    """What selecting the winner cost in model calls (the judge's scores or pairwise matches)."""
    notes: list[str] = field(default_factory=list)
    selection: dict[str, Any] | None = None
    """The ``Selection`` that picked the winner: strategy, reason, model calls, the reasoning log."""
    review: dict[str, Any] | None = None
    """The winner's review (``race(..., review_with=MODEL)``): ``patterns.review``'s report."""

    def attempts_by_name(self) -> dict[str, Attempt]:
        return {a.name: a for a in self.attempts}

    def to_dict(self) -> dict[str, Any]:
        return {"race_id": self.race_id, "status": self.status, "winner": self.winner.name if self.winner else None,
                "base_branch": self.base_branch, "base_commit": self.base_commit, "merged": self.merged,
                "merge_error": self.merge_error, "judge_cost_usd": self.judge_cost_usd, "notes": self.notes,
                "selection": self.selection, "review": self.review,
                "attempts": [a.to_dict() for a in self.attempts], "winner_diff": self.winner_diff[:MAX_STORED_DIFF]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaceOutcome:
        attempts = [Attempt.from_dict(a) for a in data["attempts"]]
        for a, raw in zip(attempts, data["attempts"]):
            a.judge_score, a.judge_reasons = raw.get("judge_score"), raw.get("judge_reasons", "")
            a.place, a.reason = raw.get("place", 0), raw.get("reason", "")
        winner = next((a for a in attempts if a.name == data["winner"]), None)
        return cls(data["race_id"], data["status"], attempts, winner, data["base_branch"], data["base_commit"],
                   merged=data.get("merged"), merge_error=data.get("merge_error"),
                   winner_diff=data.get("winner_diff", ""), judge_cost_usd=data.get("judge_cost_usd", 0.0),
                   notes=list(data.get("notes", [])), selection=data.get("selection"), review=data.get("review"))


def _agent_model(session: Any, agent: str) -> str:
    """The model an attempt without ``-m`` runs: its agent file's own (unless ``inherit``), else the default."""
    spec = session.agents_for(session.project).get(agent)
    own = (getattr(spec, "model", None) or "").strip()
    return own if own and own != "inherit" else session.settings.model


def begin(session: Any, spec: str, *, models: list[str], check: str | None = None, n: int = 1,
          agent: str = "implementer", parallel: int | None = None, judge: str | None = None, pick: str = "auto",
          select: str | None = None, keep: bool = False, budget_usd: float | None = None, allow_dirty: bool = False,
          setup: str | None = None, base: str = "HEAD", fallback: list[str] | None = None, max_turns: int | None = None,
          attempt_timeout_s: float | None = None, queue: bool = False, remote: str | None = None,
          approve_asks: bool = False, plans: list[AttemptPlan] | None = None) -> Begun:
    """Checks everything a race needs before anything exists (no branch, no worktree, no run row when
    it fails), then records the race and names its attempts."""
    config = race_config(session.settings)
    check = check or config.check
    if not spec or not spec.strip():
        raise UserError("a race needs a spec: say what to do, as an argument or with --spec-file")
    if not check or not check.strip():
        raise UserError("a race needs a check to verify attempts: pass --check 'pytest -q' "
                        "or set check under [race] in flotilla.toml")
    if pick not in ("auto", "manual"):
        raise UserError(f"--pick must be auto or manual, not {pick!r}")
    strategy = choose_strategy(select, judge)
    plans = plans or build_plans(models, n=n, agent=agent, config=config, default_model=_agent_model(session, agent),
                                 fallback=fallback)
    if not plans:
        raise UserError("a race needs at least one attempt; pass --model (and -n)")
    repo = open_repo(session.project)
    base_branch = require_branch(repo)
    if not allow_dirty:
        require_clean(repo)
    # every model resolves and has its key, every agent and CLI exists, before anything is created
    # (models the Session was handed as objects are there already)
    given = set(session._models)
    preflight([p for p in plans if p.template is not None or (p.model or session.settings.model) not in given],
              check=check, agents=session.agents_for(repo.root), settings=session.settings,
              catalog=session.catalog, parallel=parallel, judge=None if judge in given else judge, here=not queue)
    if queue and remote is None:
        remote = worker_config(session.settings).remote
    base_commit = resolve_commit(repo, base)
    wt_dir = exclude_flotilla(repo, config.worktree_dir)
    race_id = new_id()
    attempts = [{"name": p.name, "agent": p.agent, "model": p.model, "run_id": new_id(),
                 "branch": branch_name(race_id, p.name)} for p in plans]
    job = {"race_id": race_id, "root": str(repo.root), "spec": spec, "check": check, "base": base,
           "base_branch": base_branch, "base_commit": base_commit, "worktree_dir": wt_dir,
           "plans": [dataclasses.asdict(p) for p in plans], "attempts": attempts,
           "parallel": parallel or config.parallel, "judge": judge, "select": strategy, "pick": pick, "keep": keep,
           "budget_usd": budget_usd, "setup": setup or config.setup, "check_timeout_s": config.check_timeout_s,
           "attempt_timeout_s": attempt_timeout_s, "max_turns": max_turns, "queue": queue, "remote": remote,
           "approve_asks": approve_asks}
    session.store.create_run("race", spec.strip().splitlines()[0][:80], run_id=race_id, meta={
        "spec": spec, "check": check, "base": base, "base_commit": base_commit, "base_branch": base_branch,
        "root": str(repo.root), "worktree_dir": wt_dir, "pick": pick, "judge": judge, "select": strategy,
        "budget_usd": budget_usd,
        "attempts": attempts, "queue": queue})
    session.store.emit(RunStarted(run_id=race_id, kind="race", title=spec[:80]))
    return Begun(race_id, "race", job, job["spec"])


def _unit(job: dict[str, Any], plan: dict[str, Any], attempt: dict[str, Any]) -> WorkUnit:
    worker = AttemptPlan(**plan).worker()
    return WorkUnit(name=attempt["name"], parent_id=job["race_id"], run_id=attempt["run_id"], root=job["root"],
                    base_commit=job["base_commit"], instructions=job["spec"] + TASK_FOOTER.format(check=job["check"]),
                    worker=worker, check=job["check"], setup=job["setup"], worktree_dir=job["worktree_dir"],
                    max_turns=job["max_turns"], timeout_s=job["attempt_timeout_s"],
                    check_timeout_s=job["check_timeout_s"], budget_usd=job["budget_usd"],
                    budget_scope=job["race_id"], remote=job["remote"] if job["queue"] else None,
                    approve_asks=bool(job.get("approve_asks")))


@task("flotilla.race")
async def race_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    """Runs the attempts, waits for them all, then judges, ranks, cleans up and merges."""
    session = ex.session
    if job["queue"] and job["remote"]:
        pushed = await ex.step("race:publish", lambda: asyncio.to_thread(_publish, job))
        if pushed:  # the base could not reach the remote: the race fails with git's word for why
            return await ex.step("race:finish", lambda: _failed(session, job, pushed))
    units = [_unit(job, plan, a) for plan, a in zip(job["plans"], job["attempts"])]
    parallel = job["parallel"] or len(units)
    handles, running, skipped = [], [], []
    try:
        for unit in units:
            if not job["queue"] and len(running) >= parallel:
                first = await ex.wait_first(running)
                running = [h for h in running if h.id != first.id]
            over = await ex.step(f"race:budget:{unit.name}", lambda: _spent(session, job))
            if over:  # a unit that cannot spend anything is not started
                skipped.append(Attempt(name=unit.name, agent=unit.worker.agent, model=unit.worker.model,
                                       run_id=unit.run_id, status="budget", error=over))
                continue
            handle = await ex.spawn("flotilla.unit", unit.to_json(), id=unit.run_id,
                                    queue=ATTEMPTS_QUEUE if job["queue"] else None)
            handles.append(handle)
            running.append(handle)
        results = [await ex.result(h) for h in handles]
    except asyncio.CancelledError:
        for handle in handles:
            await ex.cancel(handle.id)
        raise
    attempts = [Attempt.from_dict(r) for r in results] + skipped
    return await _conclude(ex, job, attempts)


async def _conclude(ex: Executor, job: dict[str, Any], attempts: list[Attempt]) -> dict[str, Any]:
    session = ex.session
    repo = open_repo(Path(job["root"]))
    if job["queue"] and job["remote"]:
        from ..workspaces.remote import fetch_attempts

        await ex.step("race:fetch", lambda: asyncio.to_thread(fetch_attempts, repo, job["remote"], job["race_id"]))
    chosen = Selection.from_dict(await ex.step("race:select", lambda: run_selection(session, job, repo, attempts)))
    for a in attempts:
        a.judge_score, a.judge_reasons = chosen.scores.get(a.name, (None, ""))
    ranked = apply_selection(rank(attempts), chosen)
    winner = ranked[0] if chosen.winner else None
    best = winner or (ranked[0] if ranked and ranked[0].commit else None)
    outcome = RaceOutcome(job["race_id"], "done" if winner else "failed", ranked, winner, job["base_branch"],
                          job["base_commit"], judge_cost_usd=chosen.cost_usd, selection=chosen.to_dict())
    if best is not None and best.commit:
        outcome.winner_diff = await ex.step("race:diff", lambda: asyncio.to_thread(
            branch_diff, repo, job["base_commit"], best.commit))
    keep = _kept(job, ranked, best)
    await ex.step("race:clean", lambda: asyncio.to_thread(_clean_up, repo, job, ranked, keep))
    if any(a.status == "budget" for a in attempts):
        outcome.notes.append(f"the budget of ${job['budget_usd']:.2f} was spent; unfinished attempts were stopped")
    if winner is None:
        outcome.notes.append("no attempt passed its check: nothing was merged")
    elif job["pick"] == "auto":
        outcome.merged, outcome.merge_error = await ex.step("race:merge", lambda: asyncio.to_thread(
            _merge, repo, job, winner))
    else:
        outcome.notes.append(f"merge it with `flotilla merge {job['race_id']}` (branch {winner.branch}); "
                             "the other passing attempts' branches are kept too")
    return await ex.step("race:finish", lambda: _finish(session, outcome, "" if winner else "no attempt passed its check"))


def _publish(job: dict[str, Any]) -> str | None:
    from ..workspaces.remote import publish_base

    try:
        publish_base(open_repo(Path(job["root"])), job["remote"], job["race_id"], job["base_commit"])
    except Exception as exc:  # noqa: BLE001 - git's message is the reason the race fails
        return f"could not push the race's base to the remote {job['remote']}: {exc}"
    return None


def _failed(session: Any, job: dict[str, Any], reason: str) -> dict[str, Any]:
    outcome = RaceOutcome(job["race_id"], "failed", [], None, job["base_branch"], job["base_commit"], notes=[reason])
    for a in job["attempts"]:
        session.store.create_run("attempt", a["name"], parent_id=job["race_id"], run_id=a["run_id"], exist_ok=True)
        session.store.finish_run(a["run_id"], "failed", "the race could not start: " + reason)
    return _finish(session, outcome, reason)


def _spent(session: Any, job: dict[str, Any]) -> str | None:
    """Why no more attempts may start (the race's budget is spent), or None."""
    cap = job["budget_usd"]
    if cap is None:
        return None
    spent = session.meter(job["race_id"]).usd
    return f"not started: the race's budget of ${cap:.2f} was spent (${spent:.4f})" if spent >= cap else None


def _kept(job: dict[str, Any], ranked: list[Attempt], best: Attempt | None) -> set[str]:
    """The branches kept after the race: every one with --keep; with --pick manual every passing
    attempt's (any of them may be merged later); else the best attempt's."""
    if job["keep"]:
        return {a.name for a in ranked}
    kept = {best.name} if best else set()
    if job["pick"] == "manual":
        kept |= {a.name for a in ranked if a.eligible}
    return kept


def _clean_up(repo: Any, job: dict[str, Any], attempts: list[Attempt], keep: set[str]) -> None:
    mine = worktree_root(repo, job["worktree_dir"])
    for a in attempts:
        path = Path(a.path) if a.path else mine / job["race_id"] / a.name
        local = path.is_dir() and path.is_relative_to(mine)
        if local and not job["keep"]:
            remove_worktree(repo, path, branch=None if a.name in keep else a.branch)
        elif a.name not in keep and a.branch:
            delete_branch(repo, a.branch)


def _merge(repo: Any, job: dict[str, Any], winner: Attempt) -> tuple[str | None, str | None]:
    """Merges the winner (``merge_branch`` recognises and finishes its own half-done merge, so this
    step is safe to run again after a crash); deletes its branch unless --keep."""
    try:
        merged = merge_branch(repo, winner.branch, base_branch=job["base_branch"], base_commit=job["base_commit"],
                              message=f"flotilla race {job['race_id']}: {winner.name} ({winner.agent}, "
                                      f"{winner.model or 'default'})\n\n{job['spec'].strip()[:2000]}")
    except RepositoryError as exc:
        return None, str(exc)
    if not job["keep"]:
        delete_branch(repo, winner.branch)
    return merged, None


def _finish(session: Any, outcome: RaceOutcome, reason: str) -> dict[str, Any]:
    data = outcome.to_dict()
    session.store.finish_run(outcome.race_id, outcome.status, reason, result=data)
    session.emit(RunFinished(run_id=outcome.race_id, status=outcome.status, reason=reason))
    return data


def record_cancelled(session: Any, job: dict[str, Any]) -> None:
    """Records a stopped race as cancelled, keeping every attempt's branch (the attempts save their work
    there as they stop). Safe to call twice."""
    store, race_id = session.store, job["race_id"]
    if store.get_run(race_id)["status"] == "cancelled":
        return
    repo = open_repo(Path(job["root"]))
    mine = worktree_root(repo, job["worktree_dir"])
    attempts = []
    for a in job["attempts"]:
        path = mine / race_id / a["name"]
        if path.is_dir():
            remove_worktree(repo, path)
        attempts.append(Attempt(name=a["name"], agent=a["agent"], model=a["model"], run_id=a["run_id"],
                                branch=a["branch"], status="cancelled"))
    outcome = RaceOutcome(race_id, "cancelled", attempts, None, job["base_branch"], job["base_commit"],
                          notes=["stopped by the user; every attempt's work is kept on its branch"])
    _finish(session, outcome, "stopped by the user; every attempt's work is kept on its branch")
    for run_id in store.family(race_id)[1:]:  # a run stopped between steps may not have recorded its end
        if store.get_run(run_id)["status"] == "running":
            store.finish_run(run_id, "cancelled", "the race was stopped")
            store.emit(RunFinished(run_id=run_id, status="cancelled", reason="the race was stopped"))


def merge_attempt(session: Any, race_id: str, attempt: str | None, *, squash: bool = False) -> str:
    """``flotilla merge``: a finished race's winner, or a named attempt whose check passed."""
    record = finished_race(session.store, race_id)
    result = record["result"]
    attempts = {a["name"]: a for a in result.get("attempts", [])}
    name = attempt or result.get("winner")
    if name is None:
        raise UserError(f"race {record['id']} has no winner (no attempt passed its check); nothing to merge")
    if name not in attempts:
        raise UserError(f"race {record['id']} has no attempt {name!r}; it has {', '.join(sorted(attempts))}")
    chosen = attempts[name]
    if not chosen.get("passed"):
        raise UserError(f"attempt {name} of race {record['id']} did not pass its check; "
                        "flotilla only merges attempts that passed")
    if result.get("merged") and name == result.get("winner"):
        raise UserError(f"race {record['id']}'s winner {name} is already merged ({result['merged'][:10]})")
    meta = record["meta"]
    repo = open_repo(Path(meta["root"]))
    head = merge_branch(repo, chosen["branch"], base_branch=meta["base_branch"], base_commit=meta["base_commit"],
                        squash=squash, message=f"flotilla race {record['id']}: {name} "
                                               f"({chosen['agent']}, {chosen['model'] or 'default'})")
    delete_branch(repo, chosen["branch"])
    result["merged"] = head
    if name != result.get("winner"):
        result["winner"] = name
    session.store.finish_run(record["id"], record["status"], record["reason"], result=result)
    return head


def finished_race(store: Any, race_id: str) -> dict[str, Any]:
    record = store.get_run(race_id)
    if record["kind"] != "race":
        raise UserError(f"run {record['id']} is a {record['kind']} run, not a race")
    if record["result"] is None:
        raise UserError(f"race {record['id']} has not finished ({record['status']}); wait for it, "
                        "`flotilla resume` it if it crashed, or `flotilla gc` to give it up")
    return record


def attempt_diff(race: dict[str, Any], attempt: dict[str, Any]) -> str:
    """An attempt's diff against the race's base, from its commit or branch while git still has either;
    the stored winning diff when it is the winner (or the best), else "" (``flotilla diff``, the board)."""
    meta = race["meta"]
    if Path(meta["root"]).is_dir():
        text = kept_diff(open_repo(Path(meta["root"])), meta["base_commit"], attempt.get("commit"), attempt.get("branch"))
        if text:
            return text
    result = race["result"] or {}
    best = result.get("winner") or (result.get("attempts") or [{}])[0].get("name")
    return result.get("winner_diff", "") if attempt["name"] == best else ""


def collect(session: Any, *, dry_run: bool = False) -> Any:
    """``flotilla gc``: removes crashed runs' leftovers and gives their durable runs up for good."""
    from ..workspaces import collect_garbage

    config = race_config(session.settings)
    report = collect_garbage(open_repo(session.project), session.store, directory=config.worktree_dir,
                             dry_run=dry_run)
    if not dry_run and report.crashed_runs and session.durable:
        from ._worker import give_up

        give_up(session, report.crashed_runs)
    return report
