"""What a run may spend (``Limits``) and what it gives back (``AgentResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..messages import Usage

STOP_REASONS = ("end_turn", "max_turns", "budget", "timeout", "cancelled", "stopped", "error")

# How each stop reason shows in the store's ``runs.status``.
RUN_STATUS = {
    "end_turn": "done",
    "max_turns": "limited",
    "budget": "limited",
    "timeout": "limited",
    "cancelled": "cancelled",
    "stopped": "cancelled",
    "error": "failed",
}


@dataclass
class Limits:
    """Bounds on one run. None means no bound (``max_turns`` then falls back to the agent file's)."""

    max_turns: int | None = None
    """Model calls the executor may make."""
    wall_clock_s: float | None = None
    """Seconds the whole run may take, tools included."""
    budget_usd: float | None = None
    """USD the run may spend, advisor and subagents included; a call that would start over it is refused."""
    max_depth: int = 3
    """How deep subagents may nest (a top-level run is depth 0)."""
    max_parallel_subagents: int = 4
    """Subagents one run may have going at once."""
    approve_asks: bool = False
    """``--yes``: calls that an ``ask`` permission rule holds for a person go ahead. Without it an
    unattended run, having no one to ask, refuses them with the reason."""
    deny: tuple[str, ...] = ()
    """Permission rules the runtime adds to the project's deny list for this run and its subagents
    (a ledger keeps ``Edit(./features.json)`` from the agent's tools), whatever the settings files say."""


@dataclass
class AgentResult:
    """The outcome of ``run_agent``: never the transcript, which is in the store."""

    text: str
    """The executor's final message."""
    stop_reason: str
    """One of ``STOP_REASONS``."""
    usage: Usage
    """The executor's own tokens (advisor and subagents are in the store, by role and run)."""
    cost_usd: float
    """Everything this run spent: executor, advisor and its subagents."""
    files_changed: list[str]
    """Workspace-relative paths written by this run or its subagents."""
    run_id: str
    turns: int
    """Model calls the executor made."""
    error: str | None = None
    tool_calls: int = 0
    denials: list[str] = field(default_factory=list)
    """Why tool calls were refused, in order (permissions, hooks)."""
    submitted: dict | None = None
    """The validated input of the run's submit tool (``agents.submit``), when it was given one."""

    @property
    def ok(self) -> bool:
        return self.stop_reason == "end_turn"
