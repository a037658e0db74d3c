"""A race's attempts: what each will be (``AttemptPlan``) and how it ended (``Attempt``, a unit's result
with the race's own fields: the judge's score and the place it was ranked to)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..kernel.unit import UnitResult, Worker


@dataclass
class AttemptPlan:
    """What one attempt will be: a worker (agent name or external template) and a model."""

    name: str
    agent: str
    model: str
    fallback: list[str] = field(default_factory=list)
    template: str | None = None
    """The external command template, or None for a flotilla agent."""
    cli_kind: str | None = None
    """The external CLI's family (metered through the gateway), or None."""
    direct: bool = False

    def worker(self) -> Worker:
        return Worker(agent=self.agent, model=self.model, fallback=list(self.fallback), template=self.template,
                      cli_kind=self.cli_kind, direct=self.direct)


@dataclass
class Attempt(UnitResult):
    """One attempt's outcome; the final table reads these fields."""

    judge_score: float | None = None
    judge_reasons: str = ""
    place: int = 0
    reason: str = ""

    @property
    def eligible(self) -> bool:
        """May win: the worker finished without error and the check passed."""
        return self.status == "done" and self.passed

    @property
    def why_not(self) -> str:
        if self.status in ("cancelled", "budget"):
            return "stopped before it finished" + (" (budget spent)" if self.status == "budget" else "")
        if self.status in ("failed", "limited"):
            return f"the attempt {'hit a limit' if self.status == 'limited' else 'failed'}: " \
                   f"{(self.error or 'unknown error').strip().splitlines()[0]}"
        if self.check is None:
            return "its check never ran"
        return f"its check failed ({self.check.get('summary', '')})"

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["eligible"] = self.eligible
        return data
