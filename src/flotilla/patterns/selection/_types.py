"""What a selection strategy reads (``Candidate``), asks (``Judge``) and returns (``Selection``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .._judge import Verdict


@dataclass
class Candidate:
    """One attempt's typed result (an ``Attempt``), its diff against the base, and its worker's summary."""

    attempt: Any
    diff: str = ""
    summary: str = ""

    @property
    def name(self) -> str:
        return self.attempt.name


@dataclass
class Match:
    """One pairwise comparison: who met, who went through, and why."""

    first: str
    second: str
    winner: str
    reason: str


class Judge(Protocol):
    """The model calls a strategy may make; each returns what it cost."""

    async def score(self, candidate: Candidate) -> Verdict: ...

    async def compare(self, first: Candidate, second: Candidate) -> tuple[int | None, str, float, int]:
        """``(0 or 1 for the better one, or None when the judge gave no usable answer, reason, cost, calls)``."""
        ...


@dataclass
class Selection:
    """Which attempt a strategy picked and why, and the model calls and money selecting took."""

    strategy: str
    winner: str | None
    reason: str
    calls: int = 0
    cost_usd: float = 0.0
    log: list[str] = field(default_factory=list)
    """The reasoning step by step: judge scores, tournament matches, vote clusters."""
    scores: dict[str, list[Any]] = field(default_factory=dict)
    """``checks+judge``: each judged attempt's ``[score, reasons]``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        return cls(**data)
