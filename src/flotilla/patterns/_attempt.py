"""One attempt of a race: its worktree, its worker (a flotilla agent or an external CLI), its commit, its check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UserError
from ..events import AttemptFinished, AttemptStarted, CheckRan, RunFinished, RunStarted
from ..workspaces import Repo, Worktree, create_worktree, diff_stat, run_setup
from ._external import run_external

TASK_FOOTER = """

You are working in a git worktree of the project, on a branch of your own. Change files in place; do not
commit (flotilla commits your work when you finish). When you are done, this check must pass: `{check}`"""


@dataclass
class AttemptPlan:
    """What one attempt will be: a worker (agent name or external template) and a model."""

    name: str
    agent: str
    model: str
    fallback: list[str] = field(default_factory=list)
    template: str | None = None
    """The external command template, or None for a flotilla agent."""


@dataclass
class Attempt:
    """One attempt's state and outcome; the live view and the final table read these fields."""

    name: str
    agent: str
    model: str
    run_id: str
    external: bool = False
    branch: str = ""
    path: str = ""
    status: str = "pending"
    """pending, setup, running, checking, done, failed, cancelled, budget."""
    error: str | None = None
    stop_reason: str = ""
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    started_at: float = 0.0
    seconds: float = 0.0
    commit: str | None = None
    check: dict[str, Any] | None = None
    judge_score: float | None = None
    judge_reasons: str = ""
    added: int = 0
    removed: int = 0
    files: int = 0
    output_tail: str = ""
    fallback_used: str = ""
    """The fallback model that took over from an overloaded or unavailable primary, if any."""
    place: int = 0
    reason: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.check and self.check.get("passed"))

    @property
    def eligible(self) -> bool:
        """May win: the worker finished without error and the check passed."""
        return self.status == "done" and self.passed

    @property
    def why_not(self) -> str:
        if self.status in ("cancelled", "budget"):
            return "stopped before it finished" + (" (budget spent)" if self.status == "budget" else "")
        if self.status == "failed":
            return f"the attempt failed: {(self.error or 'unknown error').strip().splitlines()[0]}"
        if self.check is None:
            return "its check never ran"
        return f"its check failed ({self.check.get('summary', '')})"

    @property
    def lines_changed(self) -> int:
        return self.added + self.removed

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(eligible=self.eligible, passed=self.passed, lines_changed=self.lines_changed)
        return data


@dataclass
class AttemptContext:
    """What every attempt of one race shares."""

    repo: Repo
    race_id: str
    base_commit: str
    spec: str
    check: str
    store: Any
    sink: Any
    worktree_dir: str
    check_timeout: float = 600.0
    agent_timeout: float = 1800.0
    setup: str | None = None
    settings: Any = None
    model_factory: Callable[[str], Any] | None = None
    agents: dict[str, Any] = field(default_factory=dict)
    limits: Any = None
    meter: Any = None
    """One ``Meter`` shared by every attempt, so ``limits.budget_usd`` caps the whole race."""
    worktrees: dict[str, Worktree] = field(default_factory=dict)
    push: Callable[[Worktree], None] | None = None
    """Pushes an attempt's branch to the shared remote (attempts run by workers on other machines)."""

    def emit(self, event: Any) -> None:
        self.store.emit(event)
        if self.sink is not None and self.sink is not self.store:
            self.sink.emit(event)


async def run_attempt(ctx: AttemptContext, plan: AttemptPlan, attempt: Attempt, *, steps: Any = None) -> Attempt:
    """Runs one attempt to its end. Never raises except ``CancelledError``: a failure is recorded on it.

    ``steps`` (a durable seam, see ``flotilla.durable.DurableSteps``) records the attempt's start, its
    agent's model and tool calls, its commit, its check and its end, so that a resumed attempt replays
    them. The worktree is not a step: it is made (idempotently) wherever the attempt runs, and when it
    had to be made afresh for a resumed attempt (another machine adopted it), the recorded file
    tools run again to rebuild it.
    """
    step = _stepper(steps)
    attempt.started_at = await step("started", lambda: _started(ctx, attempt))
    worktree: Worktree | None = None
    cancelled = False
    try:
        attempt.status = "setup"
        fresh = not _worktree_path(ctx, attempt).exists()
        worktree = await asyncio.to_thread(create_worktree, ctx.repo, ctx.race_id, attempt.name,
                                           ctx.base_commit, directory=ctx.worktree_dir)
        ctx.worktrees[attempt.name] = worktree
        attempt.branch, attempt.path = worktree.branch, str(worktree.path)
        if steps is not None and fresh:
            steps.redo_replayed_tools = True  # a resumed attempt in a new worktree: rebuild its files
        if ctx.setup and fresh:
            await run_setup(worktree, ctx.setup, timeout=ctx.check_timeout)
        attempt.status = "running"
        task = ctx.spec + TASK_FOOTER.format(check=ctx.check)
        if plan.template is not None:
            done = await step("external", lambda: _external_step(ctx, plan, attempt, worktree, task))
            attempt.output_tail, attempt.error = done["output_tail"], done["error"]
        else:
            await _run_agent(ctx, plan, attempt, worktree, task, steps)
        committed = await step("commit", lambda: asyncio.to_thread(_commit_step, ctx, worktree, attempt))
        attempt.commit, attempt.added, attempt.removed, attempt.files = committed
        if attempt.error is None:
            attempt.status = "checking"
            attempt.check = await step("check", lambda: _check_step(ctx, worktree, attempt))
        attempt.status = "done" if attempt.error is None else \
            "budget" if attempt.stop_reason == "budget" else "failed"
    except Exception as exc:  # one attempt's crash never stops the others
        if _is_cancellation(exc):
            cancelled = True
            attempt.status = "cancelled"
            _save_work(worktree, attempt, ctx.base_commit)
            raise
        attempt.status, attempt.error = "failed", f"{type(exc).__name__}: {exc}"
        _save_work(worktree, attempt, ctx.base_commit)
    except BaseException as exc:  # task cancellation (Ctrl-C, the budget) or the durable run's
        if isinstance(exc, asyncio.CancelledError) or _is_cancellation(exc):
            cancelled = True
            if attempt.status != "budget":
                attempt.status = "cancelled"
            _save_work(worktree, attempt, ctx.base_commit)
        raise
    finally:
        if cancelled:  # no step can run in a cancelled workflow: record the end directly
            _finished(ctx, attempt)
    attempt.seconds = await step("finished", lambda: _finished(ctx, attempt))
    return attempt


def _stepper(steps: Any) -> Callable[[str, Callable[[], Any]], Any]:
    """``step(key, fn)``: through the durable seam when there is one, else just ``fn()``; sync or async."""
    async def run(key: str, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            value = fn()
            return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value

        return await (steps.step(f"attempt:{key}", call) if steps is not None else call())

    return run


def _is_cancellation(exc: BaseException) -> bool:
    # flotilla's Cancelled, or the durable layer's cancellation (a workflow cancelled between steps)
    from ..errors import Cancelled

    return isinstance(exc, Cancelled) or type(exc).__name__ == "DBOSWorkflowCancelledError"


def _worktree_path(ctx: AttemptContext, attempt: Attempt) -> Any:
    from ..workspaces.worktree import worktree_root

    return worktree_root(ctx.repo, ctx.worktree_dir) / ctx.race_id / attempt.name


def _started(ctx: AttemptContext, attempt: Attempt) -> float:
    ctx.emit(AttemptStarted(run_id=ctx.race_id, attempt=attempt.name, model=attempt.model, agent=attempt.agent))
    return time.time()


def _finished(ctx: AttemptContext, attempt: Attempt) -> float:
    attempt.seconds = time.time() - attempt.started_at
    reason = attempt.error or (attempt.check or {}).get("summary", "")
    ctx.emit(AttemptFinished(run_id=ctx.race_id, attempt=attempt.name, status=attempt.status, reason=reason or ""))
    if attempt.external:
        status = {"done": "done", "failed": "failed"}.get(attempt.status, "cancelled")
        ctx.store.finish_run(attempt.run_id, status, attempt.error or "", result=attempt.to_dict())
        ctx.store.emit(RunFinished(run_id=attempt.run_id, status=status, reason=attempt.error or ""))
    return attempt.seconds


def _commit_step(ctx: AttemptContext, worktree: Worktree, attempt: Attempt) -> list[Any]:
    """Commits the attempt's work (safe to repeat: nothing left to commit keeps the head) and, for an
    attempt run by a worker, pushes its branch to the shared remote."""
    _commit(worktree, attempt, ctx.base_commit)
    if ctx.push is not None:
        ctx.push(worktree)
    return [attempt.commit, attempt.added, attempt.removed, attempt.files]


async def _check_step(ctx: AttemptContext, worktree: Worktree, attempt: Attempt) -> dict[str, Any]:
    result = await worktree.run(ctx.check, timeout=ctx.check_timeout)
    ctx.emit(CheckRan(run_id=ctx.race_id, attempt=attempt.name, command=ctx.check, exit_code=result.exit_code,
                      passed=result.passed, summary=result.summary, duration_ms=result.duration_s * 1000))
    return result.to_dict()


async def _external_step(ctx: AttemptContext, plan: AttemptPlan, attempt: Attempt, worktree: Worktree,
                         task: str) -> dict[str, Any]:
    await _run_external(ctx, plan, attempt, worktree, task)
    return {"output_tail": attempt.output_tail, "error": attempt.error}


async def _run_agent(ctx: AttemptContext, plan: AttemptPlan, attempt: Attempt, worktree: Worktree,
                     task: str, steps: Any = None) -> None:
    from ..agents.loop import run_agent

    spec = ctx.agents.get(plan.agent)
    if spec is None:
        raise UserError(f"no agent named {plan.agent!r}; known: {', '.join(sorted(ctx.agents)) or 'none'}")
    result = await run_agent(spec, task, worktree.path, model=plan.model or None, fallback=tuple(plan.fallback),
                             limits=ctx.limits, store=ctx.store, sink=ctx.sink, settings=ctx.settings,
                             model_factory=ctx.model_factory, run_id=attempt.run_id,
                             parent_run_id=ctx.race_id, meter=ctx.meter, agents=ctx.agents, steps=steps)
    attempt.turns, attempt.stop_reason = result.turns, result.stop_reason
    attempt.input_tokens = result.usage.input_tokens + result.usage.cache_read_input_tokens \
        + result.usage.cache_creation_input_tokens
    attempt.output_tokens = result.usage.output_tokens
    attempt.cost_usd = max(attempt.cost_usd, result.cost_usd)
    if result.stop_reason == "cancelled":
        raise asyncio.CancelledError
    if result.stop_reason in ("error", "budget"):
        attempt.error = result.error or f"the agent stopped: {result.stop_reason}"


async def _run_external(ctx: AttemptContext, plan: AttemptPlan, attempt: Attempt, worktree: Worktree,
                        task: str) -> None:
    ctx.store.create_run("attempt", f"{attempt.name}: {plan.agent}", parent_id=ctx.race_id,
                         meta={"agent": plan.agent, "model": plan.model, "workspace": str(worktree.path)},
                         run_id=attempt.run_id)
    ctx.store.emit(RunStarted(run_id=attempt.run_id, kind="attempt", title=attempt.name, parent_id=ctx.race_id))
    assert plan.template is not None
    result = await run_external(plan.template, spec=task, model=plan.model, workspace=worktree.path,
                                timeout=ctx.agent_timeout)
    attempt.output_tail = result.output
    if result.timed_out:
        attempt.error = f"{plan.agent} timed out after {ctx.agent_timeout:.0f}s"
    elif not result.ok:
        attempt.error = f"{plan.agent} exited {result.exit_code}: {result.output.strip()[-300:]}"


def _commit(worktree: Worktree, attempt: Attempt, base: str, *, wip: bool = False) -> None:
    first = "wip: " if wip else ""
    message = f"{first}flotilla {attempt.name}: {attempt.agent}" + (f" ({attempt.model})" if attempt.model else "")
    worktree.commit(message)
    attempt.commit = worktree.head()
    stat = diff_stat(worktree.repo, base, attempt.commit)
    attempt.added, attempt.removed, attempt.files = stat.added, stat.removed, stat.files


def _save_work(worktree: Worktree | None, attempt: Attempt, base: str) -> None:
    """Keeps what a stopped or crashed attempt did, as a commit on its branch; best effort."""
    if worktree is None:
        return
    try:
        _commit(worktree, attempt, base, wip=True)
    except Exception:  # noqa: BLE001 - the attempt's own error is the one worth reporting
        pass
