"""The kernel: the work unit and the executor seam every pattern is written on.

- ``WorkUnit`` / ``run_unit`` / ``UnitResult``: a worker (flotilla's agent or an external CLI) given
  instructions in a worktree, ending in a commit and an optional check, with a typed result.
- ``Executor``: how a pattern runs steps and children (``InMemoryExecutor`` here,
  ``flotilla.durable.DurableExecutor`` durably), and ``task`` to register a pattern under a name.
"""

from .executor import TASKS, Executor, Handle, InMemoryExecutor, task, wait_for_signal
from .unit import UnitResult, Worker, WorkUnit, run_unit

__all__ = ["Executor", "Handle", "InMemoryExecutor", "TASKS", "UnitResult", "WorkUnit", "Worker", "run_unit",
           "task", "wait_for_signal"]
