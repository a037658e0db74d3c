"""Which MCP servers a run has: ``.mcp.json`` at the project root and an agent file's ``mcpServers``, in Claude Code's format.

::

    {"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
        "docs": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}}}

``type`` is ``stdio`` (the default when there is a ``command``) or ``http`` (streamable HTTP).
``${VAR}`` and ``${VAR:-default}`` are expanded in ``command``, ``args``, ``env``, ``url`` and
``headers`` from the environment. A project server named in ``disabledMcpjsonServers`` of a
settings file is left out. Everything wrong is reported with the file, the server and the fix.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import project_root
from ..errors import ConfigError

PROJECT_FILE = ".mcp.json"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class ServerConfig:
    name: str
    type: str
    """``stdio`` or ``http``."""
    source: str
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    """Where a stdio server runs: the project root."""

    @property
    def prefix(self) -> str:
        """``mcp__<server>__``: the start of every tool name from this server."""
        return f"mcp__{_UNSAFE.sub('_', self.name)}__"


def load_project_servers(workspace: Path, environ: dict[str, str] | None = None,
                         disabled: list[str] = ()) -> dict[str, ServerConfig]:
    """The servers of ``<project>/.mcp.json`` (a worktree's own copy in a race), by name."""
    root = project_root(workspace.resolve())
    path = root / PROJECT_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", f"not valid JSON ({exc})", "correct the syntax") from None
    servers = data.get("mcpServers", {}) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(str(path), "mcpServers", "must be an object of server name to its definition",
                          'write {"mcpServers": {"name": {"command": "...", "args": []}}}')
    return {name: parse_server(name, raw, str(path), root, environ)
            for name, raw in servers.items() if name not in disabled}


def parse_server(name: str, raw: Any, source: str, cwd: Path, environ: dict[str, str] | None = None) -> ServerConfig:
    """One server definition; raises ``ConfigError`` naming the key at fault."""
    env = dict(os.environ if environ is None else environ)
    key = f"mcpServers.{name}"

    def bad(field_: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(source, f"{key}.{field_}" if field_ else key, problem, fix)

    if not isinstance(raw, dict):
        raise bad("", "must be an object", 'give {"command": "...", "args": [...]} or {"type": "http", "url": "..."}')
    kind = raw.get("type") or ("stdio" if "command" in raw else "http" if "url" in raw else "")
    if kind == "streamable-http":
        kind = "http"
    if kind not in ("stdio", "http"):
        raise bad("type", f"{kind or 'no type'!r} is not a transport flotilla speaks",
                  'use "stdio" with a "command", or "http" with a "url"')

    def text(field_: str, value: Any) -> str:
        if not isinstance(value, str):
            raise bad(field_, f"must be text, not {type(value).__name__}", f'give "{field_}": "..."')
        return _expand(value, env, lambda var: bad(field_, f"uses ${{{var}}}, which is not set",
                                                   f"set {var} in the environment, or write ${{{var}:-default}}"))

    def table(field_: str) -> dict[str, str]:
        value = raw.get(field_) or {}
        if not isinstance(value, dict):
            raise bad(field_, "must be an object of name to text", f'give "{field_}": {{"NAME": "value"}}')
        return {str(k): text(f"{field_}.{k}", v) for k, v in value.items()}

    if kind == "stdio":
        args = raw.get("args") or []
        if not isinstance(args, list):
            raise bad("args", "must be a list of text", 'give "args": ["--flag", "value"]')
        if not raw.get("command"):
            raise bad("command", "a stdio server needs a command", 'give "command": "the program that starts it"')
        return ServerConfig(name, kind, source, command=text("command", raw["command"]),
                            args=[text(f"args[{i}]", a) for i, a in enumerate(args)], env=table("env"), cwd=cwd)
    if not raw.get("url"):
        raise bad("url", "an http server needs a url", 'give "url": "https://host/mcp"')
    return ServerConfig(name, kind, source, url=text("url", raw["url"]), headers=table("headers"))


def _expand(value: str, env: dict[str, str], missing: Any) -> str:
    def one(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        if var in env:
            return env[var]
        if default is not None:
            return default
        raise missing(var)

    return _VAR.sub(one, value)
