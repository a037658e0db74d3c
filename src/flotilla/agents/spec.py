"""Agents are data: an ``AgentSpec`` is what one Markdown agent file says."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READ_ONLY_TOOLS = ("Read", "Glob", "Grep", "Skill")
ALL_TOOLS = ("Read", "Write", "Edit", "Glob", "Grep", "Bash", "Agent", "Skill")


@dataclass
class AgentSpec:
    """An agent definition, compatible with Claude Code's ``.claude/agents/*.md`` frontmatter."""

    name: str
    description: str = ""
    system_prompt: str = ""
    tools: list[str] | None = None
    """Allowed tool names; None means every tool."""
    disallowed_tools: list[str] = field(default_factory=list)
    model: str = "inherit"
    """An alias, a full id, ``provider:model``, or ``inherit``."""
    permission_mode: str | None = None
    """Claude Code's ``permissionMode``; ``plan`` makes the agent read-only."""
    max_turns: int | None = None
    fallback_model: list[str] = field(default_factory=list)
    advisor: str | None = None
    budget_usd: float | None = None
    skills: list[str] | None = None
    """The skills this agent sees, by name; None means every skill found."""
    mcp_servers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    """``mcpServers``: servers of ``.mcp.json`` by name (None), or inline definitions, started for this agent."""
    source: str = "built-in"
    """Where the definition came from: a file path, or ``built-in``."""
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Frontmatter fields flotilla does not know; kept, and warned about."""
    warnings: list[str] = field(default_factory=list)
    """What the loader noticed but did not refuse (unknown fields, unknown tool names)."""

    def allowed_tools(self) -> list[str]:
        names = list(self.tools) if self.tools is not None else list(ALL_TOOLS)
        return [t for t in names if t not in self.disallowed_tools]

    @property
    def read_only(self) -> bool:
        """True when the agent may not change files: plan mode, or only read-only tools allowed."""
        if self.permission_mode == "plan":
            return True
        return all(t in READ_ONLY_TOOLS for t in self.allowed_tools())
