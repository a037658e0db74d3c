"""The one seam every model call and every tool call of a run passes through.

The loop never calls a model or a tool directly: it hands the call, as a
closure, to its ``steps`` with a key naming it within the run (``turn:3``,
``advisor:1``, the ``tool_use`` id). ``Steps`` here just runs it; the durable
module's ``DurableSteps`` (same shape, ``flotilla.durable.Steps``) records
each result so that a resumed run replays finished calls instead of repeating
them. Side effects that must not repeat on replay (``ModelCalled`` usage rows,
``ToolCalled`` events) happen inside the closure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..messages import MessagesResponse

T = TypeVar("T")


class Steps:
    """Runs each call directly: no durability. The default for a plain run."""

    durable = False

    def __init__(self) -> None:
        self.executed = 0

    async def model_call(self, key: str, fn: Callable[[], Awaitable[MessagesResponse]]) -> MessagesResponse:
        return await self.step(f"model:{key}", fn)

    async def tool_call(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await self.step(f"tool:{key}", fn)

    async def step(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        self.executed += 1
        return await fn()
