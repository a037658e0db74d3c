"""The environment a run sees besides its task, read as Claude Code reads it: memory, skills, MCP servers, permission rules.

Loaded once per top-level run from its workspace (a race attempt's worktree reads its own copy)
and shared with its subagents, which see the same memory and rules and call the same running
servers; an agent file's own inline ``mcpServers`` are started for that agent's run alone. The
loop touches it at four points: the system prompt (``prompt``), the tool set (``tools`` and
``allowed``), the refusal check (``refusal``, ``offered``), and the start and stop of servers
(``start``, ``stop``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings, claude_dir, project_root
from ..events import McpServerFailed, McpServerStarted
from .mcp import McpConnection, McpStartFailed
from .mcp_config import ServerConfig, load_project_servers, parse_server
from .memory import Memory, load_memory
from .permissions import Permissions, load_permissions, read_settings
from .skills import Skill, SkillTool, load_skills, skills_prompt, visible
from .spec import AgentSpec

log = logging.getLogger(__name__)


@dataclass
class Environment:
    workspace: Path
    memory: Memory
    skills: dict[str, Skill]
    permissions: Permissions
    servers: dict[str, ServerConfig]
    """The project's servers (``.mcp.json``), by name."""
    running: dict[str, McpConnection] = field(default_factory=dict)
    """The project's servers that started, shared by the run and its subagents."""
    failed: dict[str, str] = field(default_factory=dict)
    """Servers that did not start, with the reason."""
    _prompts: dict[tuple[str, str, int], str] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, workspace: Path, settings: Settings | None = None, *, user_dir: Path | None = None) -> Environment:
        """Reads everything but starts nothing; broken configuration raises ``ConfigError`` naming the file."""
        user_dir = user_dir or claude_dir()
        root = project_root(workspace.resolve())
        disabled: list[str] = []
        for path in (user_dir / "settings.json", root / ".claude" / "settings.json",
                     root / ".claude" / "settings.local.json"):
            disabled += (read_settings(path) or {}).get("disabledMcpjsonServers") or []
        skills, _broken = load_skills(workspace, user_dir=user_dir)  # broken skills are logged and left out
        return cls(workspace=workspace, memory=load_memory(workspace, settings, user_dir=user_dir), skills=skills,
                   permissions=load_permissions(workspace, user_dir=user_dir),
                   servers=load_project_servers(workspace, disabled=disabled))

    # -- servers --------------------------------------------------------------------

    async def start(self, spec: AgentSpec, sink: Any, run_id: str, *, project: bool,
                    sandbox: Any = None) -> list[McpConnection]:
        """Starts the project's servers (``project``: the top-level run) and the agent's inline ones, at once.

        Returns every connection this run started (its to stop); a failure is emitted and logged."""
        configs = [c for c in self.servers.values() if _may_use(spec, c)] if project else []
        for name, inline in spec.mcp_servers.items():
            if inline is not None:
                configs.append(parse_server(name, inline, spec.source, project_root(self.workspace.resolve())))
            elif name not in self.servers:
                log.warning("%s: mcpServers names %r, which is not in .mcp.json", spec.source, name)
        connections = [McpConnection(c, sandbox) for c in configs]
        outcomes = await asyncio.gather(*(c.start() for c in connections), return_exceptions=True)
        started = []
        for connection, outcome in zip(connections, outcomes):
            name = connection.config.name
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, McpStartFailed):
                    raise outcome
                self.failed[name] = outcome.reason
                log.warning("%s", outcome)
                sink.emit(McpServerFailed(run_id=run_id, server=name, error=outcome.reason, stderr=outcome.stderr))
                continue
            started.append(connection)
            if project and name in self.servers:
                self.running[name] = connection
            sink.emit(McpServerStarted(run_id=run_id, server=name, tools=[t.name for t in connection.tools],
                                       duration_ms=connection.started_ms))
        return started

    @staticmethod
    async def stop(connections: list[McpConnection]) -> None:
        await asyncio.gather(*(c.stop() for c in connections), return_exceptions=True)

    # -- what the loop asks ---------------------------------------------------------

    def prompt(self, spec: AgentSpec) -> str:
        """The memory and skills sections of the agent's system prompt, and a line per server that failed.

        Built once per agent (the loop asks every turn), again only when another server has failed."""
        key = (spec.name, spec.source, len(self.failed))
        if key not in self._prompts:
            self._prompts[key] = self._prompt(spec)
        return self._prompts[key]

    def _prompt(self, spec: AgentSpec) -> str:
        skills = visible(self.skills, spec.skills) if "Skill" in spec.allowed_tools() else {}
        parts = [self.memory.prompt(), skills_prompt(skills)]
        if self.failed:
            parts.append("# MCP servers not available\n\n" + "\n".join(
                f"- {name}: {reason}" for name, reason in sorted(self.failed.items())))
        return "\n\n".join(p for p in parts if p)

    def tools(self, spec: AgentSpec, own: list[McpConnection]) -> dict[str, Any]:
        """The Skill tool (when the agent sees skills) and every MCP tool of the servers it has."""
        tools: dict[str, Any] = {}
        seen = visible(self.skills, spec.skills)
        if seen:
            tools["Skill"] = SkillTool(seen)
        for connection in [*self.running.values(), *own]:
            for tool in connection.tools:
                tools[tool.name] = tool
        return tools

    def allowed(self, spec: AgentSpec, tools: dict[str, Any]) -> set[str]:
        """The MCP tools an agent file lets its agent use: all without a ``tools:`` list; otherwise those
        it names one by one or by server (``mcp__git``), and those of servers named in ``mcpServers``."""
        names = [n for n in tools if n.startswith("mcp__")]
        if spec.tools is None:
            chosen = set(names)
        else:
            listed = set(spec.tools) | {f"mcp__{s}" for s in spec.mcp_servers}
            chosen = {n for n in names if n in listed or _server_of(n) in listed}
        return {n for n in chosen if n not in spec.disallowed_tools and _server_of(n) not in spec.disallowed_tools}

    def offered(self, tool: str) -> bool:
        """False when a bare deny rule (``"deny": ["Bash"]``) takes the tool away from the model."""
        return not self.permissions.hidden(tool)

    def refusal(self, tool: str, input: dict[str, Any], *, approve_asks: bool) -> str | None:
        return self.permissions.refusal(tool, input, self.workspace, approve_asks=approve_asks)

    def screen(self, tool: str, text: str, *, approve_asks: bool) -> str:
        """A tool's output with what the permission rules withhold left out (Grep and Glob results)."""
        return self.permissions.screen(tool, text, self.workspace, approve_asks=approve_asks)


def _may_use(spec: AgentSpec, server: ServerConfig) -> bool:
    """Whether a top-level run needs a project server started: its agent may use the server's tools, or
    may start subagents (which share the run's servers). An implementer limited to file tools starts none."""
    allowed = spec.allowed_tools()
    if spec.tools is None or "Agent" in allowed or server.name in spec.mcp_servers:
        return True
    return any(t.startswith(server.prefix) or t == server.prefix[:-2] for t in allowed)


def _server_of(tool: str) -> str:
    """``mcp__git`` for ``mcp__git__git_status``."""
    return "__".join(tool.split("__")[:2])
