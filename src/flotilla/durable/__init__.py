"""Durable execution: runs that survive a crash, over DBOS Transact, behind our own small API.

Nothing else in flotilla imports ``dbos``. The shape:

- ``launch()`` in every process that starts or runs durable work (after importing the
  modules that define workflows); ``shutdown()`` at exit. The database is
  ``FLOTILLA_DATABASE_URL`` (``postgresql://…`` for several machines) or, by default, the
  project's ``.flotilla/flotilla.db``, shared with the run store and put in WAL mode.
- ``@workflow("name")`` on an ``async def``: an agent run, a race, an attempt.
  ``start`` / ``enqueue`` / ``wait_first`` / ``wait_all`` / ``cancel`` / ``resume``.
- ``DurableExecutor`` and ``register_tasks``: the kernel's tasks (races, units, agent runs) as
  workflows, behind the executor seam (``flotilla.kernel.executor``). Inside, every model call
  and tool call goes through ``DurableSteps``, the agent loop's seam.
- ``recover(ids)`` adopts pending runs of executors found dead (heartbeat silent for
  ``dead_after`` seconds, or, on this host, their process gone): ``flotilla resume RUN`` adopts
  that run and its children, a worker adopts queued attempts. Nothing adopts runs behind a
  person's back.
- DBOS's exceptions become flotilla's at this seam (``Cancelled``, ``RunError``, ``UserError``).

Guarantees, and what they cost:

- A finished step is never run again: on resume its recorded result is returned.
- Steps run **at least once**: the step in flight at a crash runs again. A model call
  may be paid twice; **a ``Bash`` call in flight at a crash may run twice**.
- Cancellation takes effect between steps; ``DurableSteps`` calls are preemptible, so
  the call in flight has its task cancelled (tools kill their subprocesses on cancel).
- Workflow arguments, results and step results are JSON (our serializer, not pickle).
- ``APP_VERSION`` is flotilla's own, so upgrading flotilla resumes pending runs; it
  changes only when a release changes the order of a workflow's steps.
"""

from ._runtime import APP_VERSION, DATABASE_ENV, Runtime, current, database_url, launch, shutdown
from ._runtime import recover_dead as recover
from ._workflows import (
    Handle,
    StepRecord,
    WorkflowInfo,
    cancel,
    enqueue,
    recorded_steps,
    register_queue,
    resume,
    sleep,
    start,
    wait_all,
    wait_first,
    workflow,
    workflows,
)
from .executor import DurableExecutor, Recorder, register_tasks
from .steps import DurableSteps

__all__ = [
    "APP_VERSION", "DATABASE_ENV", "DurableExecutor", "DurableSteps", "Handle", "Recorder", "Runtime", "StepRecord",
    "WorkflowInfo", "cancel", "current", "database_url", "enqueue", "launch", "recorded_steps", "recover",
    "register_queue", "register_tasks", "resume", "shutdown", "sleep", "start", "wait_all", "wait_first",
    "workflow", "workflows",
]
