"""Models that answer from a script or a function: no network, no key.

``ScriptedModel`` records every request it receives, raises ``ScriptError``
on a call it has no step for, and ``assert_consumed()`` raises when steps are
left over. They are what ``flotilla demo`` and offline runs use.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import ProviderError
from ..messages import (
    MessagesRequest,
    MessagesResponse,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
    estimate_tokens,
    response_to_events,
)

Step = MessagesResponse | ProviderError | Callable[[MessagesRequest], Any]
_ids = itertools.count(1)


class ScriptError(AssertionError):
    """The script and the calls disagree: an unexpected call, or steps left unconsumed."""


def reply(text: str, *, thinking: str | None = None, stop_reason: str = "end_turn") -> MessagesResponse:
    """A step that answers with text (and optionally a thinking block first)."""
    content: list[Any] = [ThinkingBlock(thinking=thinking, signature="scripted")] if thinking else []
    content.append(TextBlock(text=text))
    return MessagesResponse(id=f"msg_scripted_{next(_ids)}", model="", content=content, stop_reason=stop_reason)


def tool_call(name: str, input: dict[str, Any], *, text: str = "") -> MessagesResponse:
    """A step that asks for one tool call."""
    return tool_calls((name, input), text=text)


def tool_calls(*calls: tuple[str, dict[str, Any]], text: str = "") -> MessagesResponse:
    """A step that asks for several tool calls at once."""
    content: list[Any] = [TextBlock(text=text)] if text else []
    content += [ToolUseBlock(id=f"toolu_scripted_{next(_ids)}", name=n, input=i) for n, i in calls]
    return MessagesResponse(id=f"msg_scripted_{next(_ids)}", model="", content=content, stop_reason="tool_use")


def fail(status: int = 529, kind: str = "overloaded_error", message: str = "Overloaded",
         retry_after: float | None = None) -> ProviderError:
    """A step that fails the call as a provider would."""
    return ProviderError(message, status=status, kind=kind, retry_after=retry_after)


class FunctionModel:
    """A model whose answers come from a function ``fn(request) -> MessagesResponse`` (sync or async)."""

    def __init__(self, fn: Callable[[MessagesRequest], Any], name: str = "scripted:function") -> None:
        self.fn = fn
        self.name = name
        self.calls: list[MessagesRequest] = []

    async def request(self, request: MessagesRequest) -> MessagesResponse:
        self.calls.append(request)
        answer = self.fn(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return _finish(answer, self.name, request)

    async def stream(self, request: MessagesRequest) -> AsyncIterator[Any]:
        response = await self.request(request)
        for event in response_to_events(response):
            yield event

    async def count_tokens(self, request: MessagesRequest) -> int:
        return estimate_tokens(request)


class ScriptedModel(FunctionModel):
    """A model that plays back a list of steps, one per call, in order."""

    def __init__(self, steps: list[Step], name: str = "scripted:model") -> None:
        self.steps = list(steps)
        self._next = 0
        super().__init__(self._play, name)

    def _play(self, request: MessagesRequest) -> Any:
        if self._next >= len(self.steps):
            last = request.messages[-1].model_dump_json()[:300] if request.messages else ""
            raise ScriptError(f"{self.name}: unexpected call #{self._next + 1}; the script has "
                              f"{len(self.steps)} steps. Last message: {last}")
        step = self.steps[self._next]
        self._next += 1
        if isinstance(step, ProviderError):
            raise ProviderError(str(step.args[0]).split(": ", 1)[-1], status=step.status, kind=step.kind,
                                provider="scripted", model=self.name.split(":", 1)[-1],
                                retry_after=step.retry_after)
        return step(request) if callable(step) and not isinstance(step, MessagesResponse) else step

    @property
    def remaining(self) -> int:
        return len(self.steps) - self._next

    def assert_consumed(self) -> None:
        if self.remaining:
            raise ScriptError(f"{self.name}: {self.remaining} of {len(self.steps)} steps were never used")


def _finish(answer: Any, name: str, request: MessagesRequest) -> MessagesResponse:
    """Fills in what a scripted answer leaves out: model name, id, token counts."""
    if isinstance(answer, str):
        answer = reply(answer)
    if not isinstance(answer, MessagesResponse):
        raise ScriptError(f"{name}: a step must give a MessagesResponse or text, not {type(answer).__name__}")
    answer = answer.model_copy(deep=True)
    answer.model = name.split(":", 1)[-1]
    if not answer.usage.input_tokens and not answer.usage.output_tokens:
        output = sum(len(json.dumps(b.model_dump(mode="json"))) for b in answer.content) // 4
        answer.usage = Usage(input_tokens=estimate_tokens(request), output_tokens=max(1, output))
    return answer
