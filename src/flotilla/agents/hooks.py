"""Hooks: shell commands run at points of a run, configured as Claude Code configures them.

Sources, all merged: the ``hooks`` object of the user's ``~/.claude/settings.json``
(``$CLAUDE_CONFIG_DIR``), of ``.claude/settings.json`` and ``.claude/settings.local.json``
in the workspace when it has a ``.claude/`` folder, else in the project root (read
once: a worktree of the project holds the same files), and the ``[hooks]`` table of
flotilla's configuration, same shape::

    {"hooks": {"PreToolUse": [{"matcher": "Edit|Write",
                               "hooks": [{"type": "command", "command": "./check.sh", "timeout": 30}]}]}}

The command gets the event as JSON on stdin. Exit code 2 blocks the action
and its stderr goes to the model; other non-zero codes are reported and
ignored. On exit 0, JSON on stdout may carry
``hookSpecificOutput.permissionDecision`` (``allow`` / ``deny`` / ``ask``),
``permissionDecisionReason``, ``updatedInput`` and ``additionalContext``, or
the older top-level ``decision`` (``approve`` / ``block``) and ``reason``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings, claude_dir
from ..errors import ConfigError
from .permissions import read_settings

log = logging.getLogger(__name__)

EVENTS = ("PreToolUse", "PostToolUse", "Stop", "SubagentStop")
BLOCK = 2
DEFAULT_TIMEOUT_S = 60.0


@dataclass
class HookRule:
    event: str
    matcher: str
    commands: list[tuple[str, float]]
    source: str

    def matches(self, tool_name: str | None) -> bool:
        if tool_name is None or self.matcher in ("", "*"):
            return True
        try:
            return re.fullmatch(self.matcher, tool_name) is not None
        except re.error:
            return self.matcher == tool_name


@dataclass
class Verdict:
    """What the hooks of one event decided together (a block or deny from any one wins)."""

    blocked: bool = False
    reason: str = ""
    updated_input: dict[str, Any] | None = None
    context: list[str] = field(default_factory=list)
    """Text the hooks asked to show the model (``additionalContext``, PostToolUse feedback)."""


class Hooks:
    """The hook rules of a run, and the means to run them."""

    def __init__(self, rules: list[HookRule], cwd: Path, run_id: str = "") -> None:
        self.rules = rules
        self.cwd = cwd
        self.run_id = run_id

    @classmethod
    def load(cls, workspace: Path, settings: Settings | None, run_id: str = "") -> Hooks:
        """Reads every hook source for a run in ``workspace``; bad configuration raises ``ConfigError``."""
        rules: list[HookRule] = []
        # One project folder, not both: a worktree of the project (a race attempt's) holds the same
        # .claude/ as the project root, and reading both ran every hook twice.
        folder = workspace if (workspace / ".claude").is_dir() or settings is None else settings.root
        paths = [claude_dir() / "settings.json"]  # the user's, then the project's
        paths += [folder / ".claude" / name for name in ("settings.json", "settings.local.json")]
        for path in paths:
            data = read_settings(path)
            if data is not None:
                rules += parse_hooks(data.get("hooks") or {}, str(path))
        if settings is not None and settings.get("hooks"):
            rules += parse_hooks(settings.get("hooks"), settings.origin("hooks"))
        return cls(rules, workspace, run_id)

    def any_for(self, event: str) -> bool:
        return any(r.event == event for r in self.rules)

    async def run(self, event: str, payload: dict[str, Any], tool_name: str | None = None) -> Verdict:
        """Runs every command matching ``event`` (and ``tool_name``) at once and combines their answers."""
        commands = [(c, t) for r in self.rules if r.event == event and r.matches(tool_name) for c, t in r.commands]
        verdict = Verdict()
        if not commands:
            return verdict
        body = {"session_id": self.run_id, "transcript_path": "", "cwd": str(self.cwd),
                "hook_event_name": event, **payload}
        data = json.dumps(body, default=str).encode()
        answers = await asyncio.gather(*(self._exec(c, t, data) for c, t in commands))
        for command, (code, out, err) in zip((c for c, _ in commands), answers):
            _fold(verdict, event, command, code, out, err)
        return verdict

    async def _exec(self, command: str, timeout: float, data: bytes) -> tuple[int, str, str]:
        env = {**os.environ, "CLAUDE_PROJECT_DIR": str(self.cwd), "FLOTILLA_RUN_ID": self.run_id}
        proc = await asyncio.create_subprocess_shell(
            command, cwd=self.cwd, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            _kill_group(proc)
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return -1, "", f"hook timed out after {timeout:g}s: {command}"
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def parse_hooks(section: Any, source: str) -> list[HookRule]:
    """The rules of one ``hooks`` object; raises ``ConfigError`` naming the key at fault."""
    if not isinstance(section, dict):
        raise ConfigError(source, "hooks", "must be an object of event name to rules", 'use {"PreToolUse": [...]}')
    rules: list[HookRule] = []
    for event, entries in section.items():
        if event not in EVENTS:
            log.warning("%s: hook event %r is not one flotilla runs (%s); ignored", source, event, ", ".join(EVENTS))
            continue
        if not isinstance(entries, list):
            raise ConfigError(source, f"hooks.{event}", "must be a list of rules",
                              'use [{"matcher": "Bash", "hooks": [{"type": "command", "command": "..."}]}]')
        for i, entry in enumerate(entries):
            key = f"hooks.{event}[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("hooks"), list):
                raise ConfigError(source, key, "a rule needs a 'hooks' list", 'add "hooks": [{"type": "command", ...}]')
            commands = []
            for j, hook in enumerate(entry["hooks"]):
                if not isinstance(hook, dict) or hook.get("type", "command") != "command" \
                        or not isinstance(hook.get("command"), str):
                    raise ConfigError(source, f"{key}.hooks[{j}]", "only command hooks are supported",
                                      'give {"type": "command", "command": "..."}')
                commands.append((hook["command"], float(hook.get("timeout") or DEFAULT_TIMEOUT_S)))
            rules.append(HookRule(event, str(entry.get("matcher") or ""), commands, source))
    return rules


def _fold(verdict: Verdict, event: str, command: str, code: int, out: str, err: str) -> None:
    if code == BLOCK:
        verdict.blocked = True
        verdict.reason = _join(verdict.reason, err.strip() or f"blocked by hook: {command}")
        return
    if code != 0:
        log.warning("%s hook %r exited %s (not blocking): %s", event, command, code, err.strip()[:500])
        return
    try:
        answer = json.loads(out) if out.strip().startswith("{") else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        return
    specific = answer.get("hookSpecificOutput") or {}
    decision = specific.get("permissionDecision")
    reason = specific.get("permissionDecisionReason") or answer.get("reason") or ""
    # "ask" would wait for a person; a headless run has none, so it counts as a refusal.
    if decision in ("deny", "ask") or answer.get("decision") == "block" or answer.get("continue") is False:
        verdict.blocked = True
        verdict.reason = _join(verdict.reason, reason or answer.get("stopReason") or f"denied by hook: {command}")
    if isinstance(specific.get("updatedInput"), dict):
        verdict.updated_input = specific["updatedInput"]
    if specific.get("additionalContext"):
        verdict.context.append(str(specific["additionalContext"]))


def _join(a: str, b: str) -> str:
    return f"{a}\n{b}" if a else b


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
