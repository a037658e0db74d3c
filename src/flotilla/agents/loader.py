"""Agent files: Markdown with YAML frontmatter, read as Claude Code reads them.

Where they come from, first found wins for a name::

    <project>/.flotilla/agents/*.md   <project>/.claude/agents/*.md
    ~/.config/flotilla/agents/*.md    ~/.claude/agents/*.md
    the built-in agents shipped in this package

flotilla's own folder comes before Claude Code's at each level, so that a project can give flotilla
its own version of an agent without changing the file Claude Code reads. A broken file is reported
(path and field) and skipped; the others still load. ``scan_agents`` keeps what ``load_agents``
drops (shadowed and broken files) for ``flotilla agents`` to show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..config import claude_dir
from ..errors import AgentFileError, UnknownModel
from .spec import ALL_TOOLS, AgentSpec

PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto")
# Claude Code fields that do nothing here but are normal in its files: kept, not warned about.
QUIET_FIELDS = {"color"}
# Claude Code's older name for the subagent tool.
TOOL_ALIASES = {"Task": "Agent"}
_KNOWN = {"name", "description", "tools", "disallowedTools", "model", "permissionMode", "maxTurns",
          "fallbackModel", "advisor", "budgetUsd", "skills", "mcpServers"}
_FRONTMATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?(.*)\Z", re.S | re.M)


def agent_dirs(project_root: Path, home: Path | None = None) -> list[Path]:
    """The folders searched for agent files, highest precedence first."""
    user_claude = home / ".claude" if home is not None else claude_dir()
    home = home if home is not None else Path.home()
    return [project_root / ".flotilla" / "agents", project_root / ".claude" / "agents",
            home / ".config" / "flotilla" / "agents", user_claude / "agents"]


@dataclass
class AgentEntry:
    """One agent file (or built-in) as found, whether it is used or not."""

    name: str
    source: str
    """The file's path, or ``built-in``."""
    spec: AgentSpec | None = None
    error: AgentFileError | None = None
    """Why the file could not be read (then ``spec`` is None)."""
    shadowed_by: str | None = None
    """The source of the definition of the same name that won, when this one lost."""


def scan_agents(project_root: Path, *, home: Path | None = None) -> list[AgentEntry]:
    """Every agent file and built-in, highest precedence first, broken and shadowed ones included."""
    entries: list[AgentEntry] = []
    for folder in agent_dirs(project_root, home):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.md")):
            try:
                spec = parse_agent(path.read_text(encoding="utf-8"), source=str(path), default_name=path.stem)
            except AgentFileError as exc:
                entries.append(AgentEntry(path.stem, str(path), error=exc))
                continue
            except (OSError, UnicodeDecodeError) as exc:
                error = AgentFileError(str(path), "(file)", f"cannot be read: {exc}")
                entries.append(AgentEntry(path.stem, str(path), error=error))
                continue
            spec.path = path
            entries.append(AgentEntry(spec.name, str(path), spec=spec))
    entries += [AgentEntry(name, "built-in", spec=spec) for name, spec in builtin_agents().items()]
    winners: dict[str, str] = {}
    for entry in entries:
        if entry.spec is None:
            continue
        if entry.name in winners:
            entry.shadowed_by = winners[entry.name]
        else:
            winners[entry.name] = entry.source
    return entries


def load_agents(project_root: Path, *, home: Path | None = None) -> tuple[dict[str, AgentSpec], list[AgentFileError]]:
    """Every agent visible from ``project_root``, and the files that could not be read.

    A project agent wins over a user agent of the same name; built-ins come last.
    """
    entries = scan_agents(project_root, home=home)
    agents = {e.name: e.spec for e in entries if e.spec is not None and e.shadowed_by is None}
    return agents, [e.error for e in entries if e.error is not None]


def check_agent(spec: AgentSpec, *, settings: Any, catalog: Any) -> AgentFileError | None:
    """The first model field of an agent that names no model flotilla can build (``gpt5``,
    ``nosuch:x``), as an error naming the file and the field; None when they all resolve.
    A missing key is not the file's fault, so it is not reported here."""
    from ..errors import MissingApiKey, UserError
    from ..models.providers import check_model

    fields = [("model", spec.model)] if spec.model not in ("", "inherit") else []
    fields += [("fallbackModel", name) for name in spec.fallback_model]
    fields += [("advisor", spec.advisor)] if spec.advisor else []
    for field, name in fields:
        try:
            check_model(name, settings=settings, catalog=catalog)
        except MissingApiKey:
            continue
        except UserError as exc:
            return AgentFileError(spec.source, field, str(exc))
    return None


def builtin_agents() -> dict[str, AgentSpec]:
    """The agents shipped with flotilla (``agents/builtin/*.md``)."""
    result: dict[str, AgentSpec] = {}
    folder = resources.files(__package__).joinpath("builtin")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".md"):
            spec = parse_agent(entry.read_text(encoding="utf-8"), source="built-in",
                               default_name=entry.name[:-3])
            result[spec.name] = spec
    return result


def get_agent(name: str, project_root: Path | None = None, *, home: Path | None = None,
              agents: dict[str, AgentSpec] | None = None) -> AgentSpec:
    """One agent by name; a broken file of that name is reported rather than 'not found'."""
    errors: list[AgentFileError] = []
    if agents is None:
        agents, errors = load_agents(project_root or Path.cwd(), home=home)
    if name in agents:
        return agents[name]
    for err in errors:
        if Path(err.path).stem == name:
            raise err
    raise UnknownModel(name, sorted(agents), kind="agent")


def parse_agent(text: str, *, source: str, default_name: str = "") -> AgentSpec:
    """An ``AgentSpec`` from one agent file's text; raises ``AgentFileError`` naming the field."""
    front, body = read_frontmatter(text, source)
    field = _Fields(front, source)
    spec = AgentSpec(
        name=field.text("name", default_name),
        description=field.text("description", ""),
        system_prompt=body.strip(),
        tools=field.names("tools"),
        disallowed_tools=field.names("disallowedTools") or [],
        model=field.text("model", "inherit") or "inherit",
        permission_mode=field.choice("permissionMode", PERMISSION_MODES),
        max_turns=field.positive_int("maxTurns"),
        fallback_model=field.names("fallbackModel", tools=False) or [],
        advisor=field.text("advisor", None),
        budget_usd=field.money("budgetUsd"),
        skills=field.names("skills", tools=False),
        mcp_servers=_mcp_servers(front.get("mcpServers"), source),
        source=source,
        extra={k: v for k, v in front.items() if k not in _KNOWN},
    )
    if not spec.name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", spec.name):
        raise AgentFileError(source, "name", f"{spec.name!r} is not a usable name; use letters, digits and '-'")
    if len(spec.fallback_model) > 3:
        raise AgentFileError(source, "fallbackModel", "at most 3 fallback models")
    for key in spec.extra:
        if key not in QUIET_FIELDS:
            spec.warnings.append(f"{source}: unknown field {key!r} kept but not used")
    for tool in (spec.tools or []) + spec.disallowed_tools:
        if tool not in ALL_TOOLS and not tool.startswith("mcp__"):
            spec.warnings.append(f"{source}: field 'tools': {tool!r} is not one of flotilla's tools "
                                 f"({', '.join(ALL_TOOLS)}) nor an MCP tool (mcp__server__tool); it will never "
                                 "be offered")
    return spec  # its warnings are data: each front end shows them once


def read_frontmatter(text: str, source: str) -> tuple[dict[str, Any], str]:
    """The YAML frontmatter of a Markdown file (an agent, a skill) and the body after it."""
    match = _FRONTMATTER.match(text.lstrip("\ufeff"))
    if not match:
        raise AgentFileError(source, "(frontmatter)",
                             "the file must start with a '---' line, YAML fields, then a closing '---' line")
    try:
        front = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        # Claude Code accepts plain `key: value` lines whose values hold ': ' (descriptions often
        # do), which strict YAML refuses; read those the same way before calling the file broken.
        front = _plain_fields(match.group(1))
        if front is None:
            raise AgentFileError(source, "(frontmatter)", f"not valid YAML: {exc}") from None
    if not isinstance(front, dict):
        raise AgentFileError(source, "(frontmatter)", "must be a mapping of field: value")
    return front, match.group(2)


def _mcp_servers(value: Any, source: str) -> dict[str, dict[str, Any] | None]:
    """``mcpServers``: names of the project's servers (None) or inline definitions, by server name.

    Claude Code accepts a list whose items are names or ``{name: config}``, or one ``{name: config}``."""
    if value is None:
        return {}
    items = list(value.items()) if isinstance(value, dict) else None
    if items is None and isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, str):
                items.append((item, None))
            elif isinstance(item, dict):
                items += list(item.items())
            else:
                items = None
                break
    if items is None or any(not isinstance(k, str) or not (c is None or isinstance(c, dict)) for k, c in items):
        raise AgentFileError(source, "mcpServers", "must list server names from .mcp.json or "
                             "{name: {command: ..., args: [...]}} definitions")
    return dict(items)


def _plain_fields(text: str) -> dict[str, Any] | None:
    """``key: value`` lines (indented lines continue the value), or None when the text is not that."""
    fields: dict[str, Any] = {}
    key = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = re.match(r"([A-Za-z][\w-]*):(?:\s+(.*))?$", line)
        if found and not line[0].isspace():
            key = found.group(1)
            fields[key] = (found.group(2) or "").strip()
        elif key is not None and line[0].isspace():
            fields[key] = f"{fields[key]} {line.strip()}".strip()
        else:
            return None
    for key, value in fields.items():
        try:  # numbers, lists and quoted strings keep their YAML meaning
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            parsed = value
        fields[key] = value if isinstance(parsed, dict) else parsed
    return fields


class _Fields:
    """Typed access to frontmatter values; each bad value names its field."""

    def __init__(self, front: dict[str, Any], source: str) -> None:
        self.front, self.source = front, source

    def _bad(self, key: str, problem: str) -> AgentFileError:
        return AgentFileError(self.source, key, problem)

    def text(self, key: str, default: Any) -> Any:
        value = self.front.get(key)
        if value is None:
            return default
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self._bad(key, f"must be text, not {type(value).__name__}")
        return str(value).strip()

    def names(self, key: str, *, tools: bool = True) -> list[str] | None:
        value = self.front.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",")]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            items = [v.strip() for v in value]
        else:
            raise self._bad(key, "must be a comma-separated string or a list of names")
        items = [v for v in items if v]
        return [TOOL_ALIASES.get(v, v) for v in items] if tools else items

    def choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text(key, None)
        if value is not None and value not in allowed:
            raise self._bad(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def positive_int(self, key: str) -> int | None:
        value = self.front.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self._bad(key, f"must be a whole number of at least 1, not {value!r}")
        return value

    def money(self, key: str) -> float | None:
        value = self.front.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise self._bad(key, f"must be a number of USD, 0 or more, not {value!r}")
        return float(value)
