"""The executor seam: how a pattern runs its children, in memory or durably, written once.

A pattern (a race, a fan-out, an agent run) is a **task**: an ``async def fn(ex, job) -> dict``
registered with ``@task("flotilla.race")``, whose job and result are JSON. Inside, it never asks
whether it is durable. It calls its executor:

- ``ex.step(key, fn)``: a side effect done once (a commit, a check, a merge). Durably, its result
  is recorded and a resumed task gets the record instead of doing it again.
- ``ex.spawn(task, job, id=…)`` a child task; ``ex.wait_first(handles)``, ``ex.result(handle)``;
  ``ex.cancel(id)``.
- ``ex.wait_signal(topic)``: wait (durably: across process exits) for a person's signal, such as
  an approval sent with ``Session.signal``; ``ex.sleep(seconds)``.
- ``ex.steps()``: the agent loop's seam (``flotilla.agents.seam.InMemorySteps`` in memory, DBOS steps
  durably), and ``ex.recorder(run_id, store)``: the store an agent run records into, which a
  durable executor filters so that a resumed run's replayed transcript is not written twice.
- ``ex.session``: the collaborators (store, settings, models, agents, meters).

``InMemoryExecutor`` is here; the durable one is ``flotilla.durable.DurableExecutor``, behind the
same shape. Replay is the executor's business: the loop and the patterns never see it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..errors import Cancelled, UserError

T = TypeVar("T")
TaskFn = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]

TASKS: dict[str, TaskFn] = {}
"""Every task by its registered name: the name, not the Python path, is what a durable run records."""


def task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Registers a pattern or a unit of work under ``name`` (keep the name when the code moves)."""
    def register(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return register


@dataclass(frozen=True)
class Handle:
    """A spawned task, by id."""

    id: str


class Executor(Protocol):
    """How a task runs its steps and its children. Satisfied by shape (see the module docstring)."""

    durable: bool
    session: Any

    def steps(self, *, rebuild: bool = False) -> Any: ...

    def recorder(self, run_id: str, store: Any) -> Any: ...

    async def step(self, key: str, fn: Callable[[], Any]) -> Any: ...

    async def spawn(self, name: str, job: dict[str, Any], *, id: str, queue: str | None = None) -> Handle: ...

    async def wait_first(self, handles: list[Handle]) -> Handle: ...

    async def result(self, handle: Handle) -> Any: ...

    async def wait_signal(self, topic: str, timeout_s: float | None = None) -> Any: ...

    async def sleep(self, seconds: float) -> None: ...

    async def cancel(self, id: str) -> None: ...


async def call(fn: Callable[[], Any]) -> Any:
    """``fn()``, awaited when it returns an awaitable: steps may be sync or async."""
    value = fn()
    return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value


class InMemoryExecutor:
    """Children are asyncio tasks of this process; a step just runs. Nothing survives the process."""

    durable = False

    def __init__(self, session: Any) -> None:
        self.session = session
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def steps(self, *, rebuild: bool = False) -> Any:
        from ..agents.seam import InMemorySteps

        return InMemorySteps()

    def recorder(self, run_id: str, store: Any) -> Any:
        return store

    async def step(self, key: str, fn: Callable[[], Any]) -> Any:
        return await call(fn)

    async def spawn(self, name: str, job: dict[str, Any], *, id: str, queue: str | None = None) -> Handle:
        if queue is not None:
            raise UserError("queued work needs durable execution: start the Session with durable=True "
                            "(the CLI's default), or drop --queue")
        fn = TASKS[name]
        if id not in self._tasks:
            self._tasks[id] = asyncio.create_task(fn(InMemoryExecutor(self.session), job), name=id)
        return Handle(id)

    async def wait_first(self, handles: list[Handle]) -> Handle:
        tasks = {self._tasks[h.id]: h for h in handles}
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return tasks[next(iter(done))]

    async def result(self, handle: Handle) -> Any:
        try:
            return await self._tasks[handle.id]
        except asyncio.CancelledError:
            if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # we are being cancelled ourselves
            raise Cancelled(f"{handle.id} was cancelled") from None

    async def wait_signal(self, topic: str, timeout_s: float | None = None) -> Any:
        return await wait_for_signal(self.session.store, topic, timeout_s)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def cancel(self, id: str) -> None:
        running = self._tasks.get(id)
        if running is not None and not running.done():
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)



async def wait_for_signal(store: Any, topic: str, timeout_s: float | None = None,
                          poll_s: float = 0.2) -> Any:
    """The first value sent on ``topic`` (``Session.signal``, from any process), polling the store;
    None when ``timeout_s`` passes first. Reading is not taking: waiting again returns the same value."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        found = store.first_signal(topic)
        if found is not None:
            return found
        if deadline is not None and time.monotonic() >= deadline:
            return None
        await asyncio.sleep(poll_s)
