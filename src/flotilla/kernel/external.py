"""External agent CLIs (Claude Code, Codex, Gemini, aider, any command) as race workers.

Each is a command template; ``{spec}``, ``{model}``, ``{spec_file}`` and ``{workspace}`` are
filled in shell-quoted. The built-in templates are the command lines verified against each real
CLI (the version they were verified on is the minimum the pre-flight checks for); the spec always
comes after ``--`` or as one ``--opt=value`` word, so a spec that starts with ``-`` (a Markdown
bullet) is never read as an option. ``[race.agents]`` in flotilla.toml adds templates or overrides
these, as a string or a table (``{command = "…", kind = "codex", direct = true}``); ``cmd:TEMPLATE``
gives one inline.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..workspaces.checks import run_shell
from ..workspaces.sandbox import Sandbox


@dataclass(frozen=True)
class Cli:
    """One external agent: its command template and what flotilla knows about the program."""

    command: str
    kind: str | None = None
    """The CLI family (``claude-code``, ``codex``, ``gemini``, ``aider``): how it is pointed at
    flotilla's gateway and how its model is named. None for any other command (run direct)."""
    min_version: str | None = None
    """The version the template was verified on; an older CLI gets a warning before the race."""
    direct: bool = False
    """Run it against its own provider (a user's subscription), not through flotilla's gateway:
    then its cost is unknown."""

    @property
    def metered(self) -> bool:
        return self.kind is not None and not self.direct


BUILT_IN: dict[str, Cli] = {
    "claude-code": Cli("claude -p --model {model} --permission-mode acceptEdits --allowedTools Bash "
                       "--output-format stream-json --verbose -- {spec}", "claude-code", "2.1.197"),
    "codex": Cli("codex exec --json --sandbox workspace-write --skip-git-repo-check -m {model} -- {spec}",
                 "codex", "0.171.0"),
    "gemini": Cli("gemini --skip-trust --yolo -o stream-json -m {model} --prompt={spec}", "gemini", "0.61.0"),
    "aider": Cli("aider --yes-always --no-auto-commits --no-gitignore --no-check-update --analytics-disable "
                 "--no-show-model-warnings --chat-history-file /dev/null --input-history-file /dev/null "
                 "--map-tokens 0 --model {model} --message {spec}", "aider", "0.86.2"),
}
KINDS = tuple(BUILT_IN)
OUTPUT_TAIL = 4000
LONG_SPEC = 64_000
"""Characters past which the spec goes through a file (one argument may hold 128 KiB on Linux)."""
ARTIFACTS = ("/.aider*", "/.claude/settings.local.json")
"""Files the CLIs write for themselves in the project: never the attempt's work."""


@dataclass
class ExternalResult:
    command: str
    exit_code: int | None
    output: str
    """The whole output, ANSI escapes stripped (by ``run_shell``)."""
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def external_cli(agent: str, configured: dict[str, Any] | None = None) -> Cli | None:
    """The external CLI ``agent`` names, or None when it is a flotilla agent (a Markdown agent file)."""
    if agent.startswith("cmd:"):
        template = agent[4:].strip()
        if not template:
            raise UserError("--agent cmd: needs a command after the colon, e.g. --agent 'cmd:mytool {spec}'")
        return Cli(template)
    entry = (configured or {}).get(agent)
    if entry is None:
        return BUILT_IN.get(agent)
    if isinstance(entry, str):
        base = BUILT_IN.get(agent)
        return Cli(entry, base.kind, None) if base else Cli(entry)
    return _configured(agent, entry)


def _configured(agent: str, entry: dict[str, Any]) -> Cli:
    where = f"[race.agents] {agent}"
    unknown = set(entry) - {"command", "kind", "min_version", "direct"}
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; the keys are command, kind, "
                        "min_version and direct")
    base = BUILT_IN.get(agent)
    kind = entry.get("kind", base.kind if base else None)
    if kind is not None and kind not in KINDS:
        raise UserError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    command = entry.get("command") or (base.command if base else None)
    if not command:
        raise UserError(f"{where}: needs command = \"…\" (the command line, with {{spec}})")
    return Cli(command, kind, entry.get("min_version", base.min_version if base and command == base.command
                                        else None), bool(entry.get("direct", False)))


def render(template: str, *, spec: str, model: str, workspace: Path, spec_file: Path) -> str:
    """Fills the template's placeholders, each value shell-quoted."""
    values = {"spec": spec, "model": model, "workspace": str(workspace), "spec_file": str(spec_file)}
    try:
        return template.format(**{k: shlex.quote(v) for k, v in values.items()})
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"agent command template {template!r} is malformed ({exc}); the placeholders are "
                        "{spec}, {model}, {spec_file} and {workspace} (double literal braces: {{ }})") from None


async def run_external(template: str, *, spec: str, model: str, workspace: Path, timeout: float | None,
                       env: dict[str, str] | None = None, sandbox: Sandbox | None = None) -> ExternalResult:
    """Runs an external agent in ``workspace`` and waits for it; kills its whole process group on timeout
    or cancellation. The spec is also written to ``.git``-private storage for ``{spec_file}``; a spec
    too long for one argument is passed as a pointer to that file."""
    spec_file = _spec_file(workspace)
    spec_file.write_text(spec)
    if len(spec) > LONG_SPEC:
        spec = f"Your task is written in the file {spec_file}. Read it, then do it."
    command = render(template, spec=spec, model=model, workspace=workspace, spec_file=spec_file)
    done = await run_shell(command, workspace, timeout=timeout, env=env, sandbox=sandbox)
    return ExternalResult(command=command, exit_code=done.exit_code, output=done.output,
                          duration_s=done.duration_s, timed_out=done.timed_out)


def _spec_file(workspace: Path) -> Path:
    # inside the worktree's private git dir, so it is never committed
    git_file = workspace / ".git"
    if git_file.is_file():
        git_dir = Path(git_file.read_text().split(":", 1)[1].strip())
        return (git_dir if git_dir.is_absolute() else workspace / git_dir) / "FLOTILLA_SPEC.md"
    return workspace / ".git" / "FLOTILLA_SPEC.md"
