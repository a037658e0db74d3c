"""The durable executor: flotilla's tasks as DBOS workflows, behind the kernel's executor seam.

``register_tasks`` makes each registered task (``flotilla.race``, ``flotilla.unit``,
``flotilla.agent`` …) a workflow of the same name whose body builds a ``DurableExecutor`` and calls
the task; call it before ``launch``. Inside, ``step`` is a DBOS step, ``spawn`` a child workflow (or
an enqueued one for workers), ``wait_signal`` a recorded wait, and ``recorder`` filters what an agent
run emits outside its steps, which a replay emits again (see ``REPLAYED``), so that the store holds
each transcript message once however often the run resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._workflows import Handle, cancel, enqueue, sleep, start, wait_first, workflow
from .steps import DurableSteps

REPLAYED = ("RunStarted", "MessageAdded", "SteeringReceived", "ToolDenied", "AdvisorConsulted")
"""Events the agent loop emits outside any step (so again on replay), and the recorder holds back
while a resumed run replays up to what the store already has. Events emitted inside a step
(``ModelCalled``, ``ToolCalled``, ``FallbackUsed``) are not emitted again: their step is not run."""

_WORKFLOWS: dict[str, Any] = {}
_session_for: Callable[[dict[str, Any]], Any] | None = None


def register_tasks(tasks: dict[str, Any], session_for: Callable[[dict[str, Any]], Any]) -> None:
    """Makes each task a workflow of its name. ``session_for(job)`` gives the collaborators a task
    runs with in this process (the Session that launched durable execution here)."""
    global _session_for
    _session_for = session_for
    for name, fn in tasks.items():
        if name in _WORKFLOWS:
            continue

        async def body(job: dict[str, Any], _fn: Any = fn) -> dict[str, Any]:
            assert _session_for is not None, "register_tasks() before launch()"
            return await _fn(DurableExecutor(_session_for(job)), job)

        body.__name__ = body.__qualname__ = "task_" + name.replace(".", "_")
        _WORKFLOWS[name] = workflow(name)(body)


class DurableExecutor:
    """One per running workflow: its steps are recorded, its children are child workflows."""

    durable = True

    def __init__(self, session: Any) -> None:
        self.session = session
        self._steps = DurableSteps()

    def steps(self, *, rebuild: bool = False) -> DurableSteps:
        steps = DurableSteps()
        steps.redo_replayed_tools = rebuild
        return steps

    def recorder(self, run_id: str, store: Any) -> Any:
        return Recorder(store, run_id)

    async def step(self, key: str, fn: Callable[[], Any]) -> Any:
        from ..kernel.executor import call

        return await self._steps.step(key, lambda: call(fn))

    async def spawn(self, name: str, job: dict[str, Any], *, id: str, queue: str | None = None) -> Handle:
        if queue is not None:
            return await enqueue(queue, _WORKFLOWS[name], job, workflow_id=id)
        return await start(_WORKFLOWS[name], job, workflow_id=id)

    async def wait_first(self, handles: list[Handle]) -> Handle:
        return await wait_first(handles)

    async def result(self, handle: Handle) -> Any:
        return await Handle(handle.id).result()

    async def wait_signal(self, topic: str, timeout_s: float | None = None) -> Any:
        from ..kernel.executor import wait_for_signal

        return await self._steps.step(f"signal:{topic}", lambda: wait_for_signal(self.session.store, topic, timeout_s))

    async def sleep(self, seconds: float) -> None:
        await sleep(seconds)

    async def cancel(self, id: str) -> None:
        await cancel(id)


class Recorder:
    """The store as a resumed agent run sees it: the ``REPLAYED`` events it already holds for this
    run are not written again; everything else passes through."""

    def __init__(self, store: Any, run_id: str) -> None:
        self._store, self._run_id = store, run_id
        self._skip = {kind: len(store.events(run_id, kind=kind)) for kind in REPLAYED}

    def emit(self, event: Any) -> None:
        kind = type(event).__name__
        if event.run_id == self._run_id and self._skip.get(kind, 0) > 0:
            self._skip[kind] -= 1
            return
        self._store.emit(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
