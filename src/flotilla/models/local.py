"""Named in-process models, so that ``scripted:NAME`` works wherever a model name does.

``build_model`` resolves every ``scripted:`` name here; nothing in ``models/``
knows where the models come from. ``flotilla.testing`` registers through the
same function (``register_scripted`` is this module's ``register_local_model``),
and so do demos, drivers and library users::

    register_local_model("demo", lambda: ScriptedModel([...]))

The factory is called once per ``build_model``, so each caller gets fresh
script state. ``scripted:echo`` is built in: it answers with the last user
message's text, so ``flotilla ask scripted:echo hi`` works offline and keyless.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import UnknownModel
from ..messages import MessagesRequest, MessagesResponse, TextBlock, Usage, estimate_tokens, response_to_events

PROVIDER = "scripted"
LocalFactory = Callable[[], Any]
_registry: dict[str, LocalFactory] = {}
_ids = itertools.count(1)


def register_local_model(name: str, factory: LocalFactory) -> None:
    """Makes ``scripted:NAME`` build ``factory()``, a Model (``ScriptedModel``, ``FunctionModel`` …)."""
    _registry[name.removeprefix(f"{PROVIDER}:")] = factory


def local_model_names() -> list[str]:
    """The registered names, as ``scripted:NAME``."""
    return sorted(f"{PROVIDER}:{name}" for name in _registry)


def local_model(name: str) -> Any:
    """A fresh model for ``scripted:NAME`` (or bare ``NAME``); its ``.name`` is ``scripted:NAME``."""
    key = name.removeprefix(f"{PROVIDER}:")
    if key not in _registry:
        raise UnknownModel(f"{PROVIDER}:{key}", local_model_names(), kind="scripted model")
    model = _registry[key]()
    model.name = f"{PROVIDER}:{key}"
    return model


class EchoModel:
    """Answers every request with the text of its last user message."""

    def __init__(self, name: str = f"{PROVIDER}:echo") -> None:
        self.name = name

    async def request(self, request: MessagesRequest) -> MessagesResponse:
        users = [m for m in request.messages if m.role == "user"]
        text = users[-1].text() if users else ""
        return MessagesResponse(id=f"msg_echo_{next(_ids)}", model=self.name.split(":", 1)[-1], content=[TextBlock(text=text)],
                                stop_reason="end_turn",
                                usage=Usage(input_tokens=estimate_tokens(request), output_tokens=max(1, len(text) // 4)))

    async def stream(self, request: MessagesRequest) -> AsyncIterator[Any]:
        for event in response_to_events(await self.request(request)):
            yield event

    async def count_tokens(self, request: MessagesRequest) -> int:
        return estimate_tokens(request)


register_local_model("echo", EchoModel)
