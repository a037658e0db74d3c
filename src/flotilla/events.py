"""Typed events. The loop and the patterns emit them; the store, the terminal
display and the dashboard are sinks of the same stream.

Each event is a frozen dataclass; ``to_dict`` gives its JSON form with the
class name under ``"event"``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Event:
    run_id: str | None = None
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"event": type(self).__name__, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    kind: str  # "agent", "race", "attempt", …
    title: str = ""
    parent_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    status: str  # "done", "failed", "cancelled", "limited"
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ModelCalled(Event):
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    role: str = "executor"  # "executor", "advisor", "judge", …
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class FallbackUsed(Event):
    from_model: str
    to_model: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ToolCalled(Event):
    tool: str
    tool_use_id: str
    input: dict[str, Any]
    is_error: bool = False
    output_preview: str = ""
    duration_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ToolDenied(Event):
    tool: str
    tool_use_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class SandboxDenied(Event):
    """The sandbox refused what a tool's command tried: a write outside the worktree, a hidden file,
    a host not allowed. The command ran; this is what it was not let do."""

    tool: str
    reason: str
    command: str = ""


@dataclass(frozen=True, kw_only=True)
class MessageAdded(Event):
    """One message of the transcript (its JSON form), as it happens."""

    message: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ExternalRan(Event):
    """What an external agent CLI did: its command line (never a secret: keys go by environment),
    exit code and whole output (ANSI stripped); ``flotilla show RUN ATTEMPT`` prints them."""

    agent: str
    command: str
    exit_code: int | None
    output: str
    duration_ms: float = 0.0
    metered: bool = False
    """Whether its model calls went through flotilla's gateway (so its cost is known)."""


@dataclass(frozen=True, kw_only=True)
class AdvisorConsulted(Event):
    trigger: str
    advice: str


@dataclass(frozen=True, kw_only=True)
class SteeringReceived(Event):
    message: str = ""
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class McpServerStarted(Event):
    server: str
    tools: list[str] = field(default_factory=list)
    duration_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class McpServerFailed(Event):
    """An MCP server that did not start; the run goes on without its tools."""

    server: str
    error: str
    stderr: str = ""


@dataclass(frozen=True, kw_only=True)
class AttemptStarted(Event):
    """A work unit (a race's attempt, a slice …) started; ``run_id`` is its parent's."""

    attempt: str
    model: str
    agent: str
    worker_run_id: str = ""
    """The run id of the unit's own worker (its agent run or external CLI run)."""


@dataclass(frozen=True, kw_only=True)
class UnitState(Event):
    """A work unit moved on: setup, running, checking."""

    unit: str
    state: str


@dataclass(frozen=True, kw_only=True)
class PlanReady(Event):
    """A fan-out's lead submitted a valid plan (slices after overlap joining); it may await approval."""

    slices: list[dict[str, Any]]
    awaiting_approval: bool = False


@dataclass(frozen=True, kw_only=True)
class ReviewRound(Event):
    """A findings loop's reviewer answered round ``round``: its verdict, the findings it reported
    (each a ``patterns._findings.Finding`` as JSON, blocking or not) and what it resolved."""

    round: int
    verdict: str
    findings: list[dict[str, Any]]
    resolved: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    ended: str | None = None


@dataclass(frozen=True, kw_only=True)
class GateWaiting(Event):
    """A run stopped at an approval gate: ``flotilla approve RUN`` or ``flotilla reject RUN`` answers it."""

    gate: str
    summary: str = ""


@dataclass(frozen=True, kw_only=True)
class LedgerSessionEnded(Event):
    """A ledger's worker session was verified by flotilla and recorded (``passed``: its feature flipped)."""

    session: int
    feature: str
    passed: bool
    reverted: list[str] = field(default_factory=list)
    """Changes to ``features.json`` found and reverted (before the session, and the worker's own)."""
    regressed: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class AttemptFinished(Event):
    attempt: str
    status: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CheckRan(Event):
    attempt: str
    command: str
    exit_code: int | None
    passed: bool
    summary: str = ""
    duration_ms: float = 0.0


class ListSink:
    """Collects events in a list: for tests and for summaries."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class FanOut:
    """Sends each event to several sinks."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = [s for s in sinks if s is not None]

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)


class NullSink:
    def emit(self, event: Event) -> None:
        pass
