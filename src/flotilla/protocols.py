"""The boundaries of flotilla, one protocol each.

Implementations satisfy them by shape; nothing inherits from these.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from .events import Event
from .messages import MessagesRequest, MessagesResponse

T = TypeVar("T")


@runtime_checkable
class Model(Protocol):
    """A language model speaking the canonical Messages shape.

    ``name`` is ``provider:model``. Wrappers (fallback, retry, budget, usage)
    have this same shape and stack.
    """

    name: str

    async def request(self, request: MessagesRequest) -> MessagesResponse: ...

    def stream(self, request: MessagesRequest) -> AsyncIterator[Any]:
        """Yields ``messages.StreamEvent`` objects, ending with ``MessageStop``."""
        ...

    async def count_tokens(self, request: MessagesRequest) -> int: ...


@runtime_checkable
class Workspace(Protocol):
    """A directory an agent works in: a git worktree on its own branch."""

    path: Path
    branch: str

    def diff(self) -> str: ...

    def commit(self, message: str) -> str | None:
        """Commits everything; returns the new commit id, or None when nothing changed."""
        ...

    async def run(self, command: str, timeout: float) -> Any:
        """Runs a check command in the workspace; returns a ``CheckResult``."""
        ...


@runtime_checkable
class Tool(Protocol):
    """A tool an agent may call. Names follow Claude Code (``Read``, ``Edit``, ``Bash`` …)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool

    async def call(self, input: dict[str, Any], context: Any) -> Any:
        """Returns a ``ToolOutput``; raises nothing for the model's mistakes."""
        ...


@runtime_checkable
class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


@runtime_checkable
class RunStore(EventSink, Protocol):
    """Runs, attempts, events, usage, the steering inbox, approvals and gateway keys.

    It is itself an event sink: every event emitted lands in it as it happens.
    """

    def create_run(self, kind: str, title: str = "", *, parent_id: str | None = None,
                   meta: dict[str, Any] | None = None, run_id: str | None = None) -> str: ...

    def finish_run(self, run_id: str, status: str, reason: str = "",
                   result: dict[str, Any] | None = None) -> None: ...

    def get_run(self, run_id: str) -> dict[str, Any]: ...

    def list_runs(self, *, kind: str | None = None, parent_id: str | None = None, limit: int = 50,
                  status: str | None = None, top_level: bool = False, offset: int = 0) -> list[dict[str, Any]]: ...

    def update_meta(self, run_id: str, **meta: Any) -> None: ...

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]: ...

    def events_after(self, after_id: int, *, run_ids: list[str] | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        """The event tail: events committed after ``after_id``, oldest first, each with its ``id``."""
        ...

    def last_event_id(self) -> int: ...

    def send_steering(self, run_id: str, message: str = "", *, read_only: bool = False,
                      stop: bool = False) -> None: ...

    def take_steering(self, run_id: str) -> list[dict[str, Any]]: ...

    def family(self, run_id: str) -> list[str]:
        """The run and its descendants (attempts, subagents)."""
        ...

    def cost(self, run_ids: list[str]) -> float:
        """What these runs' model calls cost, from the usage rows."""
        ...

    def usage(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]: ...

    def send_signal(self, topic: str, value: Any) -> None: ...

    def first_signal(self, topic: str) -> Any: ...


class Steps(Protocol):
    """The agent loop's seam: every model call and tool call of a run goes through one.

    ``key`` names the call within the run (``turn:3``, the ``tool_use`` id) so that a replay that
    diverges is caught. ``flotilla.agents.seam.InMemorySteps`` just runs each call;
    ``flotilla.durable.DurableSteps`` records it. The executor picks one; the loop never asks which.
    """

    async def model_call(self, key: str, fn: Callable[[], Awaitable[MessagesResponse]]) -> MessagesResponse: ...

    async def tool_call(self, key: str, fn: Callable[[], Awaitable[T]]) -> T: ...

    async def step(self, key: str, fn: Callable[[], Awaitable[T]]) -> T: ...

    def reserve_tool_calls(self, ids: list[str]) -> None:
        """Fixes the order of tool calls about to run concurrently, before anything awaits: a replay
        then matches each call to its record whatever order the calls reach ``tool_call`` in."""
        ...
