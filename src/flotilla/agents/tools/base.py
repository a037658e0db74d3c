"""What every tool shares: its output, the context it runs in, and the path fence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...events import NullSink


@dataclass
class ToolOutput:
    """What a tool gives back to the model. ``is_error`` marks a failure the model should see."""

    content: str
    is_error: bool = False
    files_changed: list[str] = field(default_factory=list)
    """Workspace-relative paths this call wrote, for the run's summary."""


@dataclass
class ToolContext:
    """Where and for whom a tool runs."""

    root: Path
    """The workspace root; every path a tool touches must stay inside it."""
    run_id: str | None = None
    read_only: bool = False
    """When set, tools that write refuse (the runtime also enforces this before calling)."""
    sink: Any = field(default_factory=NullSink)
    """Where tools may emit events (an ``EventSink``)."""
    sandbox: Any = None
    """The ``workspaces.sandbox.Sandbox`` the run's commands are confined by; None runs them as they are."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Runtime services a tool may need (the ``Agent`` tool's subagent runner, say)."""
