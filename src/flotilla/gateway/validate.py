"""The request checks the Messages API makes, made before anything is sent upstream.

A request the API would refuse must be refused here too, with its
``invalid_request_error`` and the field's path: passed on, ``max_tokens: -5``
would reach an OpenAI-format backend as is, and a missing ``max_tokens`` would
be guessed. Checked on the JSON as it came, so ``"12"`` is not taken for 12.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..messages import MessagesRequest
from .errors import GatewayError

_ROLES = ("user", "assistant", "system")  # system inside messages: what Claude Code sends mid-conversation


def _fail(path: str, message: str) -> GatewayError:
    return GatewayError(400, f"{path}: {message}", "invalid_request_error")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_request(data: dict[str, Any], *, counting: bool = False) -> None:
    """Raises ``GatewayError(400)`` naming the first field the API would refuse.

    ``counting``: a ``count_tokens`` body, which carries no ``max_tokens``.
    """
    model = data.get("model")
    if model is None:
        raise _fail("model", "Field required")
    if not isinstance(model, str) or not model.strip():
        raise _fail("model", "Input should be a non-empty string")
    if not counting:
        if "max_tokens" not in data:
            raise _fail("max_tokens", "Field required")
        max_tokens = data["max_tokens"]
        if type(max_tokens) is not int:  # noqa: E721  (not isinstance: True is an int, and no max_tokens)
            raise _fail("max_tokens", "Input should be a valid integer")
        if max_tokens < 1:
            raise _fail("max_tokens", "Input should be greater than or equal to 1")
    messages = data.get("messages")
    if messages is None:
        raise _fail("messages", "Field required")
    if not isinstance(messages, list):
        raise _fail("messages", "Input should be a valid list")
    if not messages:
        raise _fail("messages", "at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(f"messages.{i}", "Input should be an object")
        if message.get("role") not in _ROLES:
            raise _fail(f"messages.{i}.role", "Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise _fail(f"messages.{i}.content", "Input should be a valid string or a list of content blocks")
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _fail(f"messages.{i}.content.{j}.type", "Field required")
    for name, low, high in (("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)):
        value = data.get(name)
        if value is None:
            continue
        if not _number(value):
            raise _fail(name, "Input should be a valid number")
        if not low <= value <= high:
            raise _fail(name, f"Input should be between {low:g} and {high:g}")
    top_k = data.get("top_k")
    if top_k is not None and (not _int(top_k) or top_k < 0):
        raise _fail("top_k", "Input should be an integer greater than or equal to 0")
    stops = data.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise _fail("stop_sequences", "Input should be a list of strings")
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("stream", "Input should be a valid boolean")
    _check_thinking(data.get("thinking"), data.get("max_tokens"), counting)
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _fail("metadata", "Input should be an object")
        user = metadata.get("user_id")
        if user is not None and not isinstance(user, str):
            raise _fail("metadata.user_id", "Input should be a valid string")
    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _fail("tools", "Input should be a valid list")


def _check_thinking(thinking: Any, max_tokens: Any, counting: bool) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        raise _fail("thinking.type", "Field required")
    if thinking["type"] != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not _int(budget):
        raise _fail("thinking.enabled.budget_tokens", "Field required (an integer)")
    if budget < 1024:
        raise _fail("thinking.enabled.budget_tokens", "Input should be greater than or equal to 1024")
    if not counting and _int(max_tokens) and budget >= max_tokens:
        raise _fail("max_tokens", "must be greater than thinking.budget_tokens")


def parse_request(data: dict[str, Any]) -> MessagesRequest:
    """The canonical request; a shape the model refuses is a 400 naming the deepest field at fault."""
    try:
        return MessagesRequest.model_validate(data)
    except ValidationError as exc:
        err = max(exc.errors(), key=lambda e: len(_path(e["loc"])))
        raise _fail(".".join(_path(err["loc"])) or "body", err["msg"]) from None


def _path(loc: tuple[Any, ...]) -> list[str]:
    """A pydantic location as the API names fields: union branches (``str``, ``list[…]``) and
    block-type tags left out (``messages.0.content.list[tagged-union[…]].0.text.text`` is
    ``messages.0.content.0.text``)."""
    out: list[str] = []
    tagged = False
    for i, part in enumerate(loc):
        if isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part):
            tagged = tagged or part.startswith(("list[tagged-union", "tagged-union", "list[Annotated"))
            continue
        if tagged and not isinstance(part, int) and i and isinstance(loc[i - 1], int):
            tagged = False
            continue  # the block's type tag
        out.append(str(part))
    return out
