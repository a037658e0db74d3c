"""The contract around every tool call: check the input against the tool's JSON
schema, refuse writers in read-only runs, and turn any failure into a tool error.

A tool's ``call`` never raises for the model's mistakes; it answers with
``ToolOutput(is_error=True)`` so the model can read what went wrong and try again.
The validator covers the subset of JSON Schema our tools use: ``type``,
``properties``, ``required``, ``enum``, ``minimum``/``maximum``,
``exclusiveMinimum``/``exclusiveMaximum``, ``items`` and ``additionalProperties: false``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from .base import ToolContext, ToolOutput

__all__ = ["ToolError", "guarded", "validate"]


class ToolError(Exception):
    """A failure the model should read (bad path, no match …); becomes ``ToolOutput(is_error=True)``."""


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    # bool is an int in Python, but never a JSON number
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def validate(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Returns the problems with ``value`` against ``schema``, each naming its field; empty when valid."""
    label = f"field {where!r}" if where else "input"
    expected = schema.get("type")
    if expected is not None:
        kinds = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES[k](value) for k in kinds):
            return [f"{label}: expected {' or '.join(kinds)}, got {_json_type(value)} ({_short(value)})"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(repr(o) for o in schema["enum"])
        problems.append(f"{label}: must be one of {options}, got {_short(value)}")
    if _TYPES["number"](value):
        for key, ok, words in (
            ("minimum", lambda v, b: v >= b, "at least"),
            ("maximum", lambda v, b: v <= b, "at most"),
            ("exclusiveMinimum", lambda v, b: v > b, "greater than"),
            ("exclusiveMaximum", lambda v, b: v < b, "less than"),
        ):
            if key in schema and not ok(value, schema[key]):
                problems.append(f"{label}: must be {words} {schema[key]}, got {value}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"field {_join(where, name)!r} is required")
        for name, item in value.items():
            if name in props:
                problems.extend(validate(item, props[name], _join(where, name)))
            elif schema.get("additionalProperties") is False:
                known = ", ".join(props) or "none"
                problems.append(f"field {_join(where, name)!r} is not allowed (allowed: {known})")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems.extend(validate(item, schema["items"], f"{where}[{i}]"))
    return problems


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _json_type(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "object", "array", "null"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


Call = Callable[[Any, dict[str, Any], ToolContext], Awaitable[ToolOutput]]


def guarded(call: Call) -> Call:
    """Wraps a tool's ``call``: validates input, refuses writers when read-only, catches failures.

    ``asyncio.CancelledError`` is not an ``Exception`` and passes through, so a
    cancelled run stops; everything else becomes a tool error with its text.
    """

    @functools.wraps(call)
    async def wrapper(self: Any, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        problems = validate(input, self.input_schema)
        if problems:
            return ToolOutput(f"Invalid input for {self.name}: " + "; ".join(problems), is_error=True)
        if not self.read_only and context.read_only:
            return ToolOutput(
                f"{self.name} is not allowed: this agent is read-only and may not change files. "
                "Use Read, Glob or Grep instead.",
                is_error=True,
            )
        try:
            return await call(self, input, context)
        except ToolError as exc:
            return ToolOutput(str(exc), is_error=True)
        except Exception as exc:  # noqa: BLE001 - any tool failure goes back to the model
            return ToolOutput(f"{self.name} failed: {type(exc).__name__}: {exc}", is_error=True)

    return wrapper
