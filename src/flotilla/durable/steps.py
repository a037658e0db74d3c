"""The durable side of the agent loop's seam (``flotilla.protocols.Steps``).

``flotilla.agents.seam.InMemorySteps`` just runs the call. ``DurableSteps`` makes each call a DBOS
step: the result is written to the database before the loop sees it, and when
a crashed run is resumed a finished call returns its recorded result instead
of running again. Wiring the loop is passing one or the other.

At least once: a call that was in flight when the process died has no recorded
result, so it runs again on resume. A model call is then paid twice; a ``Bash``
command may run twice (a ``git commit`` may find nothing left to commit, an
append may append twice). Tools are written to be safe to repeat where they
can be: creating a worktree checks what exists first.

Put side effects that must not repeat on replay (``ModelCalled`` usage rows,
``ToolCalled`` events) inside ``fn``: on replay ``fn`` is not called.

Results cross the database as JSON: a pydantic model as ``model_dump(mode="json")``
and a flat dataclass as its fields, each rebuilt into its class on the way back
(only flotilla's own classes are rebuilt); JSON values pass as they are.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dbos import DBOS
from pydantic import BaseModel

from ..messages import MessagesResponse
from ._runtime import is_launched
from ._workflows import translated

T = TypeVar("T")
_TAG = "__flotilla_value__"


class DurableSteps:
    """Each call is a DBOS step of the workflow it runs in (outside a workflow it just runs).

    ``executed`` counts calls that ran, ``replayed`` those answered from the record.
    Steps are preemptible: cancelling the run cancels the call in flight.
    """

    durable = True

    def __init__(self) -> None:
        self.executed = 0
        self.replayed = 0
        self.redo_replayed_tools = False
        """Run a replayed tool call's ``fn`` again (its recorded result still answers the loop): set when
        a run resumes in a workspace made afresh, on another machine, whose files the calls rebuild."""
        self._reserved: dict[str, Any] = {}

    def reserve_tool_calls(self, ids: list[str]) -> None:
        if is_launched() and DBOS.workflow_id is not None:
            for tool_use_id in ids:
                self._reserved[f"tool:{tool_use_id}"] = DBOS.reserve_step()

    async def model_call(self, key: str, fn: Callable[[], Awaitable[MessagesResponse]]) -> MessagesResponse:
        result = await self.step(f"model:{key}", fn)
        return result if isinstance(result, MessagesResponse) else MessagesResponse.model_validate(result)

    async def tool_call(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await self.step(f"tool:{key}", fn)

    async def step(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        ran = False

        async def run() -> Any:
            nonlocal ran
            ran = True
            return dump_value(await fn())

        if not is_launched():  # no database: a plain call, as InMemorySteps would make
            self.executed += 1
            return load_value(await run())
        options = {"name": key, "preemptible": True}
        reserved = self._reserved.pop(key, None)
        with translated(key):  # a cancelled run raises flotilla's Cancelled here, at its next step
            if reserved is not None:
                stored = await reserved.run_async(options, run)
            else:
                stored = await DBOS.run_step_async(options, run)
        if ran:
            self.executed += 1
        else:
            self.replayed += 1
            if self.redo_replayed_tools and key.startswith("tool:"):
                await fn()
        return load_value(stored)


def dump_value(value: Any) -> Any:
    """A step result as JSON, tagged with its class when it is a model or a dataclass."""
    if isinstance(value, BaseModel):
        return {_TAG: _path(type(value)), "data": value.model_dump(mode="json", exclude_none=True)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_TAG: _path(type(value)), "data": dataclasses.asdict(value)}
    return value


def load_value(value: Any) -> Any:
    """The inverse of ``dump_value``."""
    if not (isinstance(value, dict) and _TAG in value):
        return value
    module_name, _, qualname = value[_TAG].partition(":")
    if module_name.split(".")[0] != "flotilla":
        raise TypeError(f"a recorded step result names {value[_TAG]}; only flotilla's classes are rebuilt")
    cls: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return cls.model_validate(value["data"])
    return cls(**value["data"])


def _path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"
