"""Named scripted models, so that ``scripted:NAME`` works wherever a model name does.

``scripted:echo`` ships built in: it answers with the last user message's text.
Demos and tests add their own with ``register_scripted("demo", factory)``;
the factory is called once per ``build_model`` so each caller gets fresh script state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UnknownModel
from ..messages import MessagesRequest, MessagesResponse
from .scripted import FunctionModel, reply

ScriptedFactory = Callable[[], Any]
_registry: dict[str, ScriptedFactory] = {}


def register_scripted(name: str, factory: ScriptedFactory) -> None:
    """Makes ``scripted:NAME`` build ``factory()``, a Model (``ScriptedModel``, ``FunctionModel`` …)."""
    _registry[name.removeprefix("scripted:")] = factory


def scripted_names() -> list[str]:
    """The registered names, as ``scripted:NAME``."""
    return sorted(f"scripted:{name}" for name in _registry)


def scripted_model(name: str) -> Any:
    """A fresh model for ``scripted:NAME`` (or bare ``NAME``); its ``.name`` is ``scripted:NAME``."""
    key = name.removeprefix("scripted:")
    if key not in _registry:
        raise UnknownModel(f"scripted:{key}", scripted_names(), kind="scripted model")
    model = _registry[key]()
    model.name = f"scripted:{key}"
    return model


def _echo(request: MessagesRequest) -> MessagesResponse:
    users = [m for m in request.messages if m.role == "user"]
    return reply(users[-1].text() if users else "")


register_scripted("echo", lambda: FunctionModel(_echo, name="scripted:echo"))
