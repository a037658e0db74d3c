"""``flotilla memory``: what an agent run here would receive from the project's environment, before it starts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..agents import get_agent
from ..agents.environment import Environment
from ..agents.skills import visible
from ..config import load_settings
from ..errors import UserError
from ._console import make_console

err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("memory")(memory)


def memory(agent: str = typer.Option("general-purpose", "--agent", "-a", help="The agent whose view to show."),
           cwd: Optional[Path] = typer.Option(None, "--cwd", help="The workspace (default: the current folder)."),
           files_only: bool = typer.Option(False, "--files", help="Only list the files, skills, servers and rules.")) -> None:
    """Show the memory files (CLAUDE.md, AGENTS.md), skills, MCP servers and permission rules an agent gets here,
    then the text added to its system prompt, exactly."""
    root = (cwd or Path.cwd()).resolve()
    if not root.is_dir():
        raise UserError(f"--cwd {root} is not a folder")
    settings = load_settings(cwd=root)
    spec = get_agent(agent, settings.root)
    env = Environment.load(root, settings)
    err.print("memory files:" if env.memory.files else "no memory files (CLAUDE.md, AGENTS.md) found", highlight=False)
    for f in env.memory.files:
        size = f"{len(f.text):,} characters" + (f" of {f.size:,}, cut" if f.cut else "")
        err.print(f"  {f.path}  ({f.about}; {size})", highlight=False, soft_wrap=True)
    skills = visible(env.skills, spec.skills)
    err.print(f"skills for {spec.name}: " + (", ".join(f"{s.name} ({s.folder})" for s in skills.values()) or "none"),
              highlight=False)
    servers = [f"{c.name} ({c.type}: {c.command or c.url})" for c in env.servers.values()]
    err.print("MCP servers (.mcp.json, started with each run): " + (", ".join(servers) or "none"), highlight=False)
    rules = env.permissions.rules
    err.print("permission rules: " + ", ".join(f"{k} {', '.join(r.text for r in rules[k]) or '-'}" for k in rules),
              highlight=False)
    if not files_only:
        text = env.prompt(spec)
        err.rule(f"added to {spec.name}'s system prompt ({len(text):,} characters)")
        sys.stdout.write(text + "\n")  # as the model gets it: no wrapping, no markup
