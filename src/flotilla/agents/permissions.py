"""Permission rules, read from Claude Code's settings files and enforced by the runtime.

Sources, all merged (a rule from any file counts)::

    <user>/settings.json                    (~/.claude, or $CLAUDE_CONFIG_DIR)
    <project>/.claude/settings.json         <project>/.claude/settings.local.json

each as Claude Code writes it: ``{"permissions": {"allow": [...], "ask": [...], "deny": [...]}}``.
A rule is ``Tool`` or ``Tool(specifier)``:

- ``Bash(git push:*)`` a command or its prefix at a word boundary; ``Bash(npm run *)`` a glob,
  ``*`` matching anything. A compound command (``a && b``, ``a | b``, ``a; b``) is matched part by
  part, so ``Bash(rm:*)`` also refuses ``cd x && rm -rf y``.
- ``Read(./.env)``, ``Edit(src/**)``: gitignore-style paths. ``//p`` is absolute, ``~/p`` in the
  home folder, ``/p`` from the project root, ``./p`` or ``p`` from the working directory (a bare
  name like ``*.key`` matches at any depth). ``Read`` rules cover Read, and Glob and Grep, whose
  results lose the lines of files such a rule withholds; ``Edit`` rules cover Edit and Write.
- ``mcp__server`` (every tool of a server), ``mcp__server__tool``; ``Agent(name)``, ``Skill(name)``.

Rules are looked at in the order deny, ask, allow; the first match decides. A deny refuses the
call; ``ask`` would wait for a person, and an unattended run has none, so it refuses too unless
the run was started with ``--yes``. A bare deny (``Bash``) also takes the tool out of the list
the model sees. ``allow`` changes nothing here: what no rule refuses runs, as it always has.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import claude_dir, project_root
from ..errors import ConfigError
from .tools.paths import glob_regex

KINDS = ("deny", "ask", "allow")
READ_TOOLS = ("Read", "Glob", "Grep")
EDIT_TOOLS = ("Edit", "Write")
_RULE = re.compile(r"^([A-Za-z][\w*-]*)(?:\((.*)\))?$", re.S)
_ASSIGNMENT = re.compile(r"^(?:[A-Za-z_]\w*=\S*\s+)+")


@dataclass(frozen=True)
class Rule:
    text: str
    tool: str
    specifier: str | None
    source: str
    base: Path
    """The project root the settings file belongs to, for ``/path`` rules."""


@dataclass
class Permissions:
    rules: dict[str, list[Rule]] = field(default_factory=lambda: {k: [] for k in KINDS})
    home: Path = field(default_factory=Path.home)

    def hidden(self, tool: str) -> bool:
        """True when a bare deny rule takes ``tool`` away from the model altogether."""
        return any(r.specifier in (None, "*") and _names(r.tool, tool) for r in self.rules["deny"])

    def decide(self, tool: str, input: dict[str, Any], cwd: Path) -> tuple[str, Rule | None]:
        """``deny``, ``ask`` or ``allow`` and the rule that said so, or ``("default", None)``."""
        for kind in KINDS:
            for rule in self.rules[kind]:
                if self._matches(rule, tool, input, cwd, every_part=kind == "allow"):
                    return kind, rule
        return "default", None

    def refusal(self, tool: str, input: dict[str, Any], cwd: Path, *, approve_asks: bool = False) -> str | None:
        """Why the rules refuse this call, or None when it may go ahead."""
        kind, rule = self.decide(tool, input, cwd)
        if rule is None or kind == "allow":
            return None
        if kind == "deny":
            return f"{tool} was refused by the permission rule {rule.text!r} (deny, in {rule.source})."
        if approve_asks:
            return None
        return (f"{tool} needs a person's approval under the permission rule {rule.text!r} (ask, in {rule.source}), "
                "and this run is unattended, so it was refused. Do without it, or the user can start the run "
                "with --yes to approve such calls.")

    def screen(self, tool: str, text: str, cwd: Path, *, approve_asks: bool = False) -> str:
        """Grep's and Glob's output without the lines of files a ``Read`` rule keeps from the agent.

        A search over the whole tree would otherwise show what ``Read(./.env)`` refuses to read."""
        rules = [r for r in self.rules["deny"] + ([] if approve_asks else self.rules["ask"])
                 if r.tool == "Read" and r.specifier not in (None, "*")]
        if tool not in ("Grep", "Glob") or not rules:
            return text
        kept = [line for line in text.split("\n") if not self._names_withheld_file(line, rules, cwd)]
        dropped = text.count("\n") + 1 - len(kept)
        note = f"\n[{dropped} line(s) from files that permission rules keep from reading were left out]"
        return "\n".join(kept) + (note if dropped else "")

    def _names_withheld_file(self, line: str, rules: list[Rule], cwd: Path) -> bool:
        # A result line starts with a path: `path`, `path:12:text`, `path-12-context`, `path:3`.
        for end in [len(line)] + [i for i, c in enumerate(line) if c in ":-"]:
            candidate = line[:end]
            if candidate and (cwd / candidate).is_file() \
                    and any(self._path_matches(r, str(r.specifier), candidate, cwd) for r in rules):
                return True
        return False

    def _matches(self, rule: Rule, tool: str, input: dict[str, Any], cwd: Path, every_part: bool) -> bool:
        spec = rule.specifier
        if spec is None or spec == "*":
            return _names(rule.tool, tool)
        if rule.tool == "Bash" and tool == "Bash":
            parts = split_command(str(input.get("command", "")))
            hits = [_command_matches(spec, p) for p in parts]
            return bool(hits) and (all(hits) if every_part else any(hits))
        if (rule.tool == "Read" and tool in READ_TOOLS) or (rule.tool in EDIT_TOOLS and tool in EDIT_TOOLS):
            raw = input.get("file_path") or input.get("path") or "."
            return self._path_matches(rule, spec, str(raw), cwd)
        if rule.tool == tool == "Agent":
            return spec == (input.get("subagent_type") or "general-purpose")
        if rule.tool == tool == "Skill":
            return spec == input.get("skill")
        return False

    def _path_matches(self, rule: Rule, spec: str, raw: str, cwd: Path) -> bool:
        path = Path(raw) if Path(raw).is_absolute() else cwd / raw
        target = path.resolve()
        regex = glob_regex(self._anchor(rule, spec, cwd))
        return any(regex.match(p.as_posix()) for p in (target, *target.parents))

    def _anchor(self, rule: Rule, spec: str, cwd: Path) -> str:
        """The rule's pattern as an absolute glob."""
        if spec.startswith("//"):
            pattern = spec[1:]
        elif spec.startswith("~/"):
            pattern = f"{self.home.as_posix()}/{spec[2:]}"
        elif spec.startswith("/"):
            pattern = f"{rule.base.resolve().as_posix()}{spec}"
        else:
            relative = spec[2:] if spec.startswith("./") else spec
            anywhere = "/" not in relative.rstrip("/") and not spec.startswith("./")
            pattern = f"{cwd.resolve().as_posix()}/{'**/' if anywhere else ''}{relative}"
        return pattern.rstrip("/") if pattern != "/" else pattern


def load_permissions(workspace: Path, *, user_dir: Path | None = None, home: Path | None = None) -> Permissions:
    """The rules that hold for a run in ``workspace``; a broken file raises ``ConfigError`` naming it."""
    root = project_root(workspace.resolve())
    found = Permissions(home=home or Path.home())
    user = user_dir or claude_dir()
    for path, base in ((user / "settings.json", root), (root / ".claude" / "settings.json", root),
                       (root / ".claude" / "settings.local.json", root)):
        section = (read_settings(path) or {}).get("permissions") or {}
        if not isinstance(section, dict):
            raise ConfigError(str(path), "permissions", "must be an object", 'use {"deny": ["Bash(rm:*)"]}')
        for kind in KINDS:
            entries = section.get(kind) or []
            if not isinstance(entries, list):
                raise ConfigError(str(path), f"permissions.{kind}", "must be a list of rules",
                                  f'use "{kind}": ["Bash(git push:*)", "Read(./.env)"]')
            found.rules[kind] += [parse_rule(e, str(path), f"permissions.{kind}[{i}]", base)
                                  for i, e in enumerate(entries)]
    return found


def read_settings(path: Path) -> dict[str, Any] | None:
    """One Claude Code settings file as an object, None when there is none."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", f"not valid JSON ({exc})", "correct the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "(file)", "must hold a JSON object", 'start it with {"permissions": {...}}')
    return data


def parse_rule(text: Any, source: str, key: str, base: Path) -> Rule:
    match = _RULE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(source, key, f"{text!r} is not a permission rule",
                          'write Tool or Tool(specifier), e.g. "Bash(rm:*)" or "Read(./.env)"')
    specifier = match.group(2)
    return Rule(text.strip(), match.group(1), specifier.strip() if specifier is not None else None, source, base)


def split_command(command: str) -> list[str]:
    """The simple commands of a shell line, split at ``&&``, ``||``, ``;``, ``|``, ``&`` and newlines
    outside quotes, each without leading ``VAR=value`` assignments."""
    parts, current, quote, i = [], "", "", 0
    while i < len(command):
        c = command[i]
        if quote:
            quote = "" if c == quote else quote
            current += c
        elif c in "'\"":
            quote = c
            current += c
        elif c == "\\" and i + 1 < len(command):
            current += command[i:i + 2]
            i += 1
        elif c in ";|&\n" and not (c == "&" and current.endswith((">", "<"))):  # not the `&` of `2>&1`
            parts.append(current)
            current = ""
            while i + 1 < len(command) and command[i + 1] in "|&":
                i += 1
        else:
            current += c
        i += 1
    parts.append(current)
    cleaned = [_ASSIGNMENT.sub("", " ".join(p.split())) for p in parts]
    return [p for p in cleaned if p]


def _command_matches(spec: str, command: str) -> bool:
    if spec.endswith(":*"):
        prefix = spec[:-2].strip()
        return command == prefix or command.startswith(prefix + " ")
    if "*" not in spec:
        return command == spec
    regex = ".*".join(re.escape(piece) for piece in spec.split("*"))
    if spec.endswith(" *") and spec.count("*") == 1:  # `ls *` matches `ls` itself too, not `lsof`
        regex = re.escape(spec[:-2]) + r"(?: .*)?"
    return re.fullmatch(regex, command, re.S) is not None


def _names(rule_tool: str, tool: str) -> bool:
    """Whether a rule's tool part names ``tool``: exactly, or as its MCP server (``mcp__git``, ``mcp__git__*``)."""
    if rule_tool == tool:
        return True
    server = rule_tool.removesuffix("__*")
    return server.startswith("mcp__") and server.count("__") == 1 and tool.startswith(server + "__")
