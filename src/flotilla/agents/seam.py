"""The one seam every model call and every tool call of a run passes through.

The loop never calls a model or a tool directly: it hands the call, as a
closure, to its ``steps`` (a ``flotilla.protocols.Steps``) with a key naming it
within the run (``turn:3``, ``advisor:1``, the ``tool_use`` id).
``InMemorySteps`` here just runs it; ``flotilla.durable.DurableSteps`` records
each result so that a resumed run replays finished calls instead of repeating
them. The executor (``flotilla.kernel``) chooses which; the loop never asks. Side effects that must not repeat on replay (``ModelCalled`` usage rows,
``ToolCalled`` events) happen inside the closure.

What a durable replay runs again, because it is outside any step: the
permission checks (pure functions of the agent file and the call) and the
``PreToolUse``/``PostToolUse``/``Stop`` hooks (their verdicts are not
recorded: a hook should be a check, not an action). The transcript events are
not sent twice: a resumed run skips the ``MessageAdded`` events the store
already holds (the durable executor's recorder holds them back). Subagents run inside their ``Agent`` tool
call's step, not as steps of their own: one in flight at a crash runs again
from its start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..messages import MessagesResponse

T = TypeVar("T")


class InMemorySteps:
    """Runs each call directly: no durability. The default for a plain run."""

    durable = False

    def __init__(self) -> None:
        self.executed = 0
        self.replayed = 0

    async def model_call(self, key: str, fn: Callable[[], Awaitable[MessagesResponse]]) -> MessagesResponse:
        return await self.step(f"model:{key}", fn)

    async def tool_call(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await self.step(f"tool:{key}", fn)

    async def step(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        self.executed += 1
        return await fn()

    def reserve_tool_calls(self, ids: list[str]) -> None:
        """Called before tool calls run concurrently; a durable seam fixes their step order here."""
