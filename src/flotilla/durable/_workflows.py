"""Workflows: define, start, enqueue, wait for, cancel, resume and list them.

Called inside a workflow, ``start`` makes a child workflow and ``Handle.result``,
``wait_first``, ``wait_all`` and ``cancel`` are themselves recorded, so a parent
(a race) replays them without waiting again for children that had finished.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dbos import DBOS, SetWorkflowID
from dbos import error as dbos_error

from ..errors import Cancelled, NothingToResume, RunError, UserError
from ._runtime import APP_VERSION, current, off_loop

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
POLL_SECONDS = 0.1
"""How often a waiting handle looks at its workflow's row (SQLite has no notifications)."""

_STATES = {"ENQUEUED": "queued", "DELAYED": "queued", "SUCCESS": "done", "ERROR": "failed",
           "CANCELLED": "cancelled", "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "failed"}


def workflow(name: str, *, max_recovery_attempts: int = 50) -> Callable[[F], F]:
    """Makes an ``async def`` a durable workflow registered under ``name``.

    The name, not the Python path, is what the database records: keep it when code moves.
    Arguments and the result must be JSON. The body must be deterministic between steps:
    anything that reads the clock, the disk, the network or a model goes in a step.
    """
    def decorate(fn: F) -> F:
        return DBOS.workflow(name=name, max_recovery_attempts=max_recovery_attempts)(fn)

    return decorate


@dataclass(frozen=True)
class Handle:
    """A started workflow, by id."""

    id: str
    _started: Any = field(default=None, compare=False, repr=False)
    """DBOS's handle when this process started the workflow: it awaits the task, not the row."""

    async def result(self) -> Any:
        """Waits for the workflow and returns its result, raising what it raised
        (``Cancelled`` when it was cancelled). Inside a workflow the wait is recorded."""
        with translated(self.id):
            handle = self._started or await _dbos_handle(self.id)
            return await handle.get_result(polling_interval_sec=POLL_SECONDS)

    def status(self) -> str:
        """The run's state (see ``WorkflowInfo.state``). Not for use inside a workflow:
        a status read there would not replay the same."""
        if DBOS.workflow_id is not None:
            raise RuntimeError("Handle.status() inside a workflow is not deterministic; use result() or wait_first()")
        found = workflows(ids=[self.id])
        if not found:
            raise UserError(f"no durable run {self.id!r}; `flotilla runs` lists them")
        return found[0].state


async def _dbos_handle(workflow_id: str) -> Any:
    # Inside a workflow, skip DBOS's recorded existence check: it records a status object,
    # which is not JSON. Outside, keep it, so an unknown id fails instead of waiting forever.
    inside = DBOS.workflow_id is not None
    return await DBOS.retrieve_workflow_async(workflow_id, existing_workflow=not inside)


async def start(fn: Callable[..., Awaitable[Any]], *args: Any, workflow_id: str | None = None) -> Handle:
    """Starts a workflow in this process and returns at once. Starting an id that exists
    returns the existing workflow's handle (a second start of a run does not run it twice)."""
    current()
    with SetWorkflowID(workflow_id or uuid.uuid4().hex[:10]):
        handle = await DBOS.start_workflow_async(fn, *args)
    return Handle(handle.workflow_id, handle)


async def enqueue(queue: str, fn: Callable[..., Awaitable[Any]], *args: Any,
                  workflow_id: str | None = None) -> Handle:
    """Puts a workflow on a queue (see ``register_queue``) for any listening executor."""
    current()
    with SetWorkflowID(workflow_id or uuid.uuid4().hex[:10]):
        handle = await DBOS.enqueue_workflow_async(queue, fn, *args)
    return Handle(handle.workflow_id)


def register_queue(name: str, *, concurrency: int | None = None, worker_concurrency: int | None = None,
                   polling_interval: float = 1.0) -> None:
    """Declares a queue: at most ``concurrency`` of its workflows run at once over all
    executors, at most ``worker_concurrency`` on any one. Call after ``launch``."""
    current()
    off_loop(lambda: DBOS.register_queue(name, global_concurrency=concurrency,
                                         worker_concurrency=worker_concurrency,
                                         polling_interval_sec=polling_interval, on_conflict="always_update"))


async def wait_first(handles: list[Handle]) -> Handle:
    """Waits until one of the workflows finishes (in any state) and returns its handle."""
    with translated(",".join(h.id for h in handles)):
        dbos_handles = [await _dbos_handle(h.id) for h in handles]
        first = await DBOS.wait_first_async(dbos_handles, polling_interval_sec=POLL_SECONDS)
    return Handle(first.workflow_id)


async def wait_all(handles: list[Handle]) -> list[Any]:
    """Waits for every workflow and returns their results in order (the first error raises)."""
    return [await h.result() for h in handles]


async def sleep(seconds: float) -> None:
    """A recorded sleep inside a workflow: a resumed run sleeps only what was left."""
    with translated("sleep"):
        await DBOS.sleep_async(seconds)


async def cancel(workflow_id: str, *, children: bool = True) -> None:
    """Cancels a workflow (and its children). It stops at its next step; a step in flight
    that is preemptible (every ``Steps`` call is) has its task cancelled at once."""
    with translated(workflow_id):
        await DBOS.cancel_workflow_async(workflow_id, cancel_children=children)


def resume(workflow_id: str) -> Handle:
    """Continues a run from its last finished step: a crashed one (pending, its executor dead, with
    its crashed children) or a cancelled one. A run that is running, finished or failed has nothing
    to resume: ``NothingToResume`` (``UserError`` while it runs) says which."""
    info = {w.id: w for w in workflows(ids=[workflow_id])}.get(workflow_id)
    if info is None:
        raise UserError(f"no durable run {workflow_id!r}; `flotilla runs` lists them")
    if info.state == "running":
        raise UserError(f"run {workflow_id} is still running (executor {info.executor_id}); nothing to resume. "
                        "Stop it with `flotilla stop`, or wait for it")
    if info.state in ("done", "failed"):
        why = {"done": "it finished", "failed": f"it failed ({info.error})"}
        raise NothingToResume(f"run {workflow_id}: nothing to resume, {why[info.state]}; "
                              "start it again to redo it")
    if info.state == "resumable":
        from ._runtime import recover_dead

        recover_dead([workflow_id])
    else:  # cancelled: continued on purpose (flotilla's own commands never resume a stopped run)
        off_loop(lambda: DBOS.resume_workflow(workflow_id))
    return Handle(workflow_id)


@dataclass(frozen=True)
class WorkflowInfo:
    """One workflow as ``flotilla runs`` shows it."""

    id: str
    name: str
    state: str
    """queued, running, resumable (pending, its executor dead), done, failed, cancelled."""
    status: str
    """DBOS's own status string."""
    executor_id: str | None
    parent_id: str | None
    queue: str | None
    created_at: float | None
    updated_at: float | None
    error: str | None


def workflows(*, ids: list[str] | None = None, name: str | None = None, parent_id: str | None = None,
              limit: int | None = 100) -> list[WorkflowInfo]:
    """Lists workflows, newest first, with a state that tells running from crashed."""
    runtime = current()
    rows = off_loop(lambda: DBOS.list_workflows(workflow_ids=ids, name=name, parent_workflow_id=parent_id,
                                                limit=limit, sort_desc=True, load_input=False))
    alive = runtime.heartbeat.alive()
    out = []
    for w in rows:
        if w.status == "PENDING":
            state = "running" if w.executor_id in alive else "resumable"
            if w.app_version not in (None, APP_VERSION):
                state = "failed"  # written by an incompatible release: nothing here can resume it
        else:
            state = _STATES.get(w.status, w.status.lower())
        out.append(WorkflowInfo(id=w.workflow_id, name=w.name, state=state, status=w.status,
                                executor_id=w.executor_id, parent_id=w.parent_workflow_id, queue=w.queue_name,
                                created_at=w.created_at / 1000 if w.created_at else None,
                                updated_at=w.updated_at / 1000 if w.updated_at else None,
                                error=str(w.error) if w.error is not None else None))
    return out


@dataclass(frozen=True)
class StepRecord:
    """One recorded step of a workflow."""

    step: int
    name: str
    error: str | None
    child_id: str | None


def recorded_steps(workflow_id: str) -> list[StepRecord]:
    """The steps a workflow has recorded so far, in order (what a resume will not run again)."""
    current()
    with translated(workflow_id):
        rows = off_loop(lambda: DBOS.list_workflow_steps(workflow_id))
    return [StepRecord(step=r["function_id"], name=r["function_name"],
                       error=str(r["error"]) if r.get("error") is not None else None,
                       child_id=r.get("child_workflow_id")) for r in rows]


class translated:
    """Turns DBOS's exceptions into flotilla's at this seam."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, dbos_error.DBOSWorkflowCancelledError):  # the running workflow was cancelled
            raise Cancelled(f"durable run {self.what} was cancelled") from exc
        if exc is None or not isinstance(exc, dbos_error.DBOSException):
            return False
        if isinstance(exc, dbos_error.DBOSAwaitedWorkflowCancelledError):
            raise Cancelled(f"durable run {self.what} was cancelled") from exc
        if isinstance(exc, dbos_error.DBOSNonExistentWorkflowError):
            raise UserError(f"no durable run {self.what!r}; `flotilla runs` lists them") from exc
        if isinstance(exc, (dbos_error.DBOSUnexpectedStepError, dbos_error.DBOSStepNondeterminismError)):
            raise RunError(f"durable run {self.what} cannot resume: the code now calls its steps in another "
                           f"order than the run recorded ({exc}). Finish it with the release that started it, "
                           "or start it again") from exc
        raise RunError(f"durable run {self.what}: {exc}") from exc
