"""The work unit: a worker given instructions in a worktree, ending in a commit and an optional check.

Every pattern is made of these: a race's attempts, and (to come) fan-out slices, pipeline stages,
review rounds, best-of-N samples and ledger sessions. A ``WorkUnit`` says what to do (JSON, so a
durable run can record it); ``run_unit`` does it through an executor and returns a ``UnitResult``
(branch, commit, diff stat, check, tokens and cost from the store, the failure reason). It never
raises for the work's own failure, only for cancellation.

The steps, each done once however often the unit is resumed: ``started``; the worker (flotilla's
agent loop, whose model and tool calls are steps of their own, or one ``external`` step for a CLI);
``commit``; ``check``; ``finished``. The worktree is not a step: it is made (idempotently) wherever
the unit runs, and when a resumed unit finds it gone (another machine adopted it), its recorded
file tools run again to rebuild it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..agents.submit import from_json as submit_from_json
from ..errors import Cancelled
from ..events import AttemptFinished, AttemptStarted, CheckRan, RunFinished, UnitState
from ..workspaces import DEFAULT_DIR, Repo, Worktree, create_worktree, diff_stat, open_repo, remove_worktree, \
    run_setup
from ..workspaces.sandbox import Sandbox, sandbox_for
from ..workspaces.worktree import worktree_root
from .agent_run import run_agent_in
from .executor import Executor, task
from ._external_run import external_step


@dataclass
class Worker:
    """Who does the work: a flotilla agent (by name) on a model, or an external CLI's command template."""

    agent: str = "implementer"
    model: str = ""
    fallback: list[str] = field(default_factory=list)
    template: str | None = None
    """The external command template, or None for a flotilla agent."""
    cli_kind: str | None = None
    """The external CLI's family (``codex`` …): how it is metered through the gateway; None runs it as is."""
    direct: bool = False
    """Run the external CLI against its own provider, unmetered."""


@dataclass
class WorkUnit:
    """One unit of work, as JSON-able data."""

    name: str
    """Its name within its parent (``a1``); the branch is ``flotilla/<parent>/<name>``."""
    parent_id: str
    run_id: str
    root: str
    """The repository the unit works on (its worktree is made there)."""
    base_commit: str
    instructions: str
    worker: Worker
    check: str | None = None
    setup: str | None = None
    worktree_dir: str = DEFAULT_DIR
    max_turns: int | None = None
    timeout_s: float | None = None
    """Wall-clock seconds the worker may take (flotilla's loop and external CLIs alike)."""
    check_timeout_s: float = 600.0
    budget_usd: float | None = None
    budget_scope: str | None = None
    """The run whose meter this unit spends from (a race's units share one budget); default its own."""
    remote: str | None = None
    """Set when the unit runs on a worker machine: its clone comes from, and its branch goes to, this remote."""
    approve_asks: bool = False
    """Let through the tool calls an ``ask`` permission rule holds for a person (``--yes``)."""
    submit: dict[str, Any] | None = None
    """A structured answer the worker ends with (``agents.submit.from_json``: ``{"kind", "args"}``); its
    validated input is ``UnitResult.submitted``. Flotilla agents only."""
    deny: list[str] = field(default_factory=list)
    """Permission rules the runtime adds for the worker (``Limits.deny``): a ledger's ``features.json``."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkUnit:
        return cls(**{**data, "worker": Worker(**data["worker"])})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class UnitResult:
    """A unit's state and outcome; a live view and the final table read these fields."""

    name: str
    agent: str
    model: str
    run_id: str
    external: bool = False
    metered: bool = True
    """Whether flotilla counted its model calls (its own agents; an external CLI through its gateway)."""
    branch: str = ""
    path: str = ""
    status: str = "pending"
    """pending, setup, running, checking, done, failed, cancelled, budget, limited."""
    error: str | None = None
    stop_reason: str = ""
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    """None when unknown (an external CLI run direct)."""
    started_at: float = 0.0
    seconds: float = 0.0
    commit: str | None = None
    check: dict[str, Any] | None = None
    added: int = 0
    removed: int = 0
    files: int = 0
    output_tail: str = ""
    fallback_used: str = ""
    """The fallback model that took over from an overloaded or unavailable primary, if any."""
    submitted: dict[str, Any] | None = None
    """The validated structured answer, when the unit asked for one (``WorkUnit.submit``)."""

    @property
    def passed(self) -> bool:
        return bool(self.check and self.check.get("passed"))

    @property
    def lines_changed(self) -> int:
        return self.added + self.removed

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(passed=self.passed, lines_changed=self.lines_changed)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


LIMIT_STOPS = ("max_turns", "timeout")


@task("flotilla.unit")
async def unit_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    return (await run_unit(ex, WorkUnit.from_json(job))).to_dict()


async def run_unit(ex: Executor, unit: WorkUnit) -> UnitResult:
    """Runs one unit to its end through ``ex``. Never raises except for cancellation."""
    session = ex.session
    result = UnitResult(name=unit.name, agent=unit.worker.agent, model=unit.worker.model, run_id=unit.run_id,
                        external=unit.worker.template is not None)
    result.started_at = await ex.step("unit:started", lambda: _started(session, unit))
    repo: Repo | None = None
    worktree: Worktree | None = None
    try:
        repo, push = await asyncio.to_thread(_repository, session, unit)
        fresh = not (worktree_root(repo, unit.worktree_dir) / unit.parent_id / unit.name).exists()
        _state(session, unit, result, "setup")
        worktree = await asyncio.to_thread(create_worktree, repo, unit.parent_id, unit.name, unit.base_commit,
                                           directory=unit.worktree_dir)
        result.branch, result.path = worktree.branch, str(worktree.path)
        if unit.setup and fresh:
            await run_setup(worktree, unit.setup, timeout=unit.check_timeout_s, sandbox=_sandbox(session, unit).for_checks())
        _state(session, unit, result, "running")
        if unit.worker.template is not None:
            done = await ex.step("unit:external", lambda: external_step(session, unit, worktree,
                                                                         _sandbox(session, unit)))
            result.output_tail, result.error, result.stop_reason = done["output"], done["error"], done["stop"]
        else:
            await _agent(ex, unit, worktree, result, rebuild=fresh, project=repo.root)
        committed = await ex.step("unit:commit", lambda: asyncio.to_thread(_commit, worktree, unit, push))
        result.commit, result.added, result.removed, result.files = committed
        if result.error is None and unit.check:
            _state(session, unit, result, "checking")
            result.check = await ex.step("unit:check", lambda: _check(session, unit, worktree))
        result.status = _final_status(result)
    except asyncio.CancelledError:
        _stopped(session, unit, result, worktree)
        raise
    except Cancelled:
        _stopped(session, unit, result, worktree)
        raise asyncio.CancelledError from None
    except Exception as exc:  # noqa: BLE001 - a unit's failure is its result, never another unit's end
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        _save_work(worktree, unit, result)
    _tokens(session, result)
    result.seconds = await ex.step("unit:finished", lambda: _finished(session, unit, result))
    if unit.remote and worktree is not None and repo is not None:  # a worker's clone: the branch is pushed
        await asyncio.to_thread(remove_worktree, repo, worktree.path, branch=worktree.branch)
    return result


def _final_status(result: UnitResult) -> str:
    if result.error is None:
        return "done"
    return {"budget": "budget", "max_turns": "limited", "timeout": "limited"}.get(result.stop_reason, "failed")


def _repository(session: Any, unit: WorkUnit) -> tuple[Repo, Any]:
    """The repository to work in, and how to publish the branch: the project itself, or on a worker
    machine a clone of the shared remote whose branch is pushed back."""
    if not unit.remote:
        return open_repo(Path(unit.root)), None
    from ..workspaces.remote import push_branch, worker_clone

    remote = session.worker_remote or unit.remote
    repo = worker_clone(remote, unit.parent_id)
    return repo, lambda worktree: push_branch(repo, remote, worktree.branch)


def _state(session: Any, unit: WorkUnit, result: UnitResult, state: str) -> None:
    result.status = state
    session.emit(UnitState(run_id=unit.parent_id, unit=unit.name, state=state))


def _started(session: Any, unit: WorkUnit) -> float:
    session.emit(AttemptStarted(run_id=unit.parent_id, attempt=unit.name, model=unit.worker.model,
                                agent=unit.worker.agent, worker_run_id=unit.run_id))
    return time.time()


def _finished(session: Any, unit: WorkUnit, result: UnitResult) -> float:
    result.seconds = time.time() - result.started_at
    reason = result.error or (result.check or {}).get("summary", "")
    session.emit(AttemptFinished(run_id=unit.parent_id, attempt=unit.name, status=result.status, reason=reason or ""))
    if result.external:
        status = {"done": "done", "failed": "failed", "limited": "limited"}.get(result.status, "cancelled")
        session.store.finish_run(unit.run_id, status, result.error or "", result=result.to_dict())
        session.emit(RunFinished(run_id=unit.run_id, status=status, reason=result.error or ""))
    return result.seconds


def _stopped(session: Any, unit: WorkUnit, result: UnitResult, worktree: Worktree | None) -> None:
    """A cancelled unit: its work kept on its branch, its end recorded directly (a cancelled durable
    run can take no more steps)."""
    if result.status != "budget":
        result.status = "cancelled"
    _save_work(worktree, unit, result)
    _finished(session, unit, result)


async def _agent(ex: Executor, unit: WorkUnit, worktree: Worktree, result: UnitResult, *, rebuild: bool,
                 project: Path) -> None:
    outcome = await run_agent_in(ex, unit.worker.agent, unit.instructions, worktree.path, run_id=unit.run_id,
                                 parent_run_id=unit.parent_id, model=unit.worker.model or None,
                                 fallback=unit.worker.fallback, max_turns=unit.max_turns,
                                 timeout_s=unit.timeout_s, budget_usd=unit.budget_usd,
                                 budget_scope=unit.budget_scope or unit.run_id, rebuild=rebuild, project=project,
                                 approve_asks=unit.approve_asks, deny=tuple(unit.deny),
                                 submit=submit_from_json(unit.submit))
    result.turns, result.stop_reason, result.submitted = outcome.turns, outcome.stop_reason, outcome.submitted
    if outcome.stop_reason == "cancelled":
        raise asyncio.CancelledError
    if outcome.stop_reason != "end_turn":
        result.error = outcome.error or f"the agent stopped: {outcome.stop_reason}"


def _sandbox(session: Any, unit: WorkUnit) -> Sandbox:
    """The project's sandbox; checks and external CLIs are confined only when ``[sandbox] checks`` /
    ``external`` ask for it."""
    return sandbox_for(session.settings_for(Path(unit.root)))


def _commit(worktree: Worktree, unit: WorkUnit, push: Any, *, wip: bool = False) -> list[Any]:
    """Commits the unit's work (safe to repeat: nothing left to commit keeps the head) and, on a
    worker machine, pushes its branch to the shared remote."""
    worker = unit.worker
    message = ("wip: " if wip else "") + f"flotilla {unit.name}: {worker.agent}" + \
        (f" ({worker.model})" if worker.model else "")
    worktree.commit(message)
    if push is not None:
        push(worktree)
    head = worktree.head()
    stat = diff_stat(worktree.repo, unit.base_commit, head)
    return [head, stat.added, stat.removed, stat.files]


async def _check(session: Any, unit: WorkUnit, worktree: Worktree) -> dict[str, Any]:
    assert unit.check is not None
    done = await worktree.run(unit.check, timeout=unit.check_timeout_s, sandbox=_sandbox(session, unit).for_checks())
    session.emit(CheckRan(run_id=unit.parent_id, attempt=unit.name, command=unit.check, exit_code=done.exit_code,
                          passed=done.passed, summary=done.summary, duration_ms=done.duration_s * 1000))
    return done.to_dict()


def _tokens(session: Any, result: UnitResult) -> None:
    """Tokens and cost from the store's usage rows (the unit's run and its subagents): the one record
    of spend, complete however often the unit was resumed."""
    if result.external:
        rows = session.store.usage([result.run_id])
        result.metered = bool(rows)
        if not rows:
            result.cost_usd = None
            return
    fell = session.store.events(result.run_id, kind="FallbackUsed")
    result.fallback_used = fell[-1]["to_model"] if fell else ""
    rows = session.store.usage(session.store.family(result.run_id))
    result.input_tokens = sum((r["input_tokens"] or 0) + (r["cache_read_tokens"] or 0) + (r["cache_write_tokens"] or 0)
                              for r in rows)
    result.output_tokens = sum(r["output_tokens"] or 0 for r in rows)
    result.cost_usd = sum(r["cost_usd"] or 0.0 for r in rows)


def _save_work(worktree: Worktree | None, unit: WorkUnit, result: UnitResult) -> None:
    """Keeps what a stopped or crashed unit did, as a commit on its branch; best effort."""
    if worktree is None:
        return
    try:
        result.commit, result.added, result.removed, result.files = _commit(worktree, unit, None, wip=True)
    except Exception:  # noqa: BLE001 - the unit's own error is the one worth reporting
        pass
