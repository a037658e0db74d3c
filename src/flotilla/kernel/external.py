"""External agent CLIs (Claude Code, Codex, Gemini, aider, any command) as race workers.

Each is a command template; ``{spec}``, ``{model}``, ``{spec_file}`` and
``{workspace}`` are filled in shell-quoted. ``[race.agents]`` in flotilla.toml
adds templates or overrides these; ``cmd:TEMPLATE`` gives one inline.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..workspaces.checks import run_shell
from ..workspaces.sandbox import Sandbox

DEFAULT_TEMPLATES: dict[str, str] = {
    "claude-code": "claude -p {spec} --model {model} --permission-mode acceptEdits",
    "codex": "codex exec --full-auto {spec}",
    "gemini": "gemini --yolo -p {spec}",
    "aider": "aider --yes --no-auto-commits --message {spec}",
}
OUTPUT_TAIL = 4000


@dataclass
class ExternalResult:
    command: str
    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def external_template(agent: str, configured: dict[str, str] | None = None) -> str | None:
    """The command template for ``agent``, or None when it is a flotilla agent (a Markdown agent file)."""
    if agent.startswith("cmd:"):
        template = agent[4:].strip()
        if not template:
            raise UserError("--agent cmd: needs a command after the colon, e.g. --agent 'cmd:mytool {spec}'")
        return template
    templates = {**DEFAULT_TEMPLATES, **(configured or {})}
    return templates.get(agent)


def render(template: str, *, spec: str, model: str, workspace: Path, spec_file: Path) -> str:
    """Fills the template's placeholders, each value shell-quoted."""
    values = {"spec": spec, "model": model, "workspace": str(workspace), "spec_file": str(spec_file)}
    try:
        return template.format(**{k: shlex.quote(v) for k, v in values.items()})
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"agent command template {template!r} is malformed ({exc}); the placeholders are "
                        "{spec}, {model}, {spec_file} and {workspace} (double literal braces: {{ }})") from None


async def run_external(template: str, *, spec: str, model: str, workspace: Path, timeout: float,
                       env: dict[str, str] | None = None, sandbox: Sandbox | None = None) -> ExternalResult:
    """Runs an external agent in ``workspace`` and waits for it; kills its whole process group on timeout
    or cancellation. The spec is also written to ``.git``-private storage for ``{spec_file}``."""
    spec_file = _spec_file(workspace)
    spec_file.write_text(spec)
    command = render(template, spec=spec, model=model, workspace=workspace, spec_file=spec_file)
    done = await run_shell(command, workspace, timeout=timeout, env=env, sandbox=sandbox)
    return ExternalResult(command=command, exit_code=done.exit_code, output=done.output[-OUTPUT_TAIL:],
                          duration_s=done.duration_s, timed_out=done.timed_out)


def _spec_file(workspace: Path) -> Path:
    # inside the worktree's private git dir, so it is never committed
    git_file = workspace / ".git"
    if git_file.is_file():
        git_dir = Path(git_file.read_text().split(":", 1)[1].strip())
        return (git_dir if git_dir.is_absolute() else workspace / git_dir) / "FLOTILLA_SPEC.md"
    return workspace / ".git" / "FLOTILLA_SPEC.md"
