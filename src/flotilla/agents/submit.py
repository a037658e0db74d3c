"""Structured answers: a tool the runtime offers whose validated input is the run's result.

A fan-out's plan (``submit_plan``), and later a review (``submit_review``) or a feature list, come
back this way rather than as prose to parse. The loop offers the tool beside the agent's own, hands
each call's input to ``validate``, and returns the errors to the model as the tool's (error) result
so it can correct itself; the first valid call ends the run and its input is ``AgentResult.submitted``.
The runtime bounds it: after ``max_attempts`` invalid calls (or turns ended without calling it) the
run fails with ``InvalidSubmission`` instead of looping. ``validate`` must be a pure function of the
input: a resumed durable run re-derives the answer from the recorded calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UserError

from ..messages import ToolSpec


@dataclass(frozen=True)
class Submission:
    """The submit tool of one run."""

    name: str
    description: str
    input_schema: dict[str, Any]
    validate: Callable[[dict[str, Any]], list[str]]
    """The problems with an input, each naming the field and the fix; empty when it is valid."""
    max_attempts: int = 3

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, input_schema=self.input_schema)

    def errors(self, input: Any) -> list[str]:
        if not isinstance(input, dict):
            return [f"the input of {self.name} must be a JSON object"]
        try:
            return list(self.validate(input))
        except Exception as exc:  # noqa: BLE001 - a validator's crash is a reason to retry, said plainly
            return [f"could not validate the input: {type(exc).__name__}: {exc}"]

    def reminder(self) -> str:
        return f"You ended your turn without calling {self.name}. Your answer counts only as a {self.name} call: call it now."

    def refusal(self, errors: list[str]) -> str:
        return f"{self.name} refused: fix these and call it again:\n" + "\n".join(f"- {e}" for e in errors)


KINDS: dict[str, Callable[..., Submission]] = {}
"""Submission factories by name, so that work given as JSON (a ``WorkUnit``) can ask for one:
``{"kind": name, "args": {...}}``. The module that defines a kind registers it on import."""


def kind(name: str) -> Callable[[Callable[..., Submission]], Callable[..., Submission]]:
    def register(factory: Callable[..., Submission]) -> Callable[..., Submission]:
        KINDS[name] = factory
        return factory

    return register


def from_json(data: dict[str, Any] | None) -> Submission | None:
    """The submission a work unit's JSON asks for, or None."""
    if not data:
        return None
    factory = KINDS.get(data["kind"])
    if factory is None:
        raise UserError(f"no submission kind {data['kind']!r} (known: {', '.join(sorted(KINDS)) or 'none'})")
    return factory(**data.get("args", {}))
