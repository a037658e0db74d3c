"""Race pre-flight: what can be known wrong before a branch, a worktree or a run row exists.

An attempt that fails in its first second because a model name is misspelt, a key is not set or
an external agent is not installed costs a worktree, a branch and a run row per attempt, and its
reason is buried in a table. Every such mistake is found here first and reported together, each
naming what was wrong and the fix; nothing has been created when it raises.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from ._attempt import AttemptPlan
from ..kernel.external import render

EXTERNAL = "claude-code, codex, gemini, aider, cmd:'TEMPLATE'"


def preflight(plans: list[AttemptPlan], *, check: str, agents: dict[str, Any], settings: Any, catalog: Any,
              parallel: int | None = None, judge: str | None = None, here: bool = True,
              broken: Sequence[Any] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """Raises one ``UserError`` listing every problem that stops the race; returns warnings (a check
    whose program is not found yet, since the setup command may create it).

    ``here=False`` (attempts queued for workers on other machines) skips what only those machines
    can answer: the attempts' API keys and the programs on their ``PATH``. The judge runs here."""
    from ..errors import MissingApiKey
    from ..models.providers import check_model

    environ = os.environ if environ is None else environ
    problems: list[str] = []
    if parallel is not None and parallel < 1:
        problems.append(f"--parallel must be at least 1 (got {parallel})")

    def model_ok(name: str, what: str, *, key: bool = here) -> None:
        try:
            check_model(name, settings=settings, catalog=catalog, environ=environ)
        except MissingApiKey as exc:
            if key:
                problems.append(f"{what}: {exc}")
        except UserError as exc:
            problems.append(f"{what}: {exc}")

    warnings: list[str] = []
    seen: set[tuple[str, str, str | None]] = set()
    for plan in plans:
        if (plan.agent, plan.model, plan.template) in seen:
            continue
        seen.add((plan.agent, plan.model, plan.template))
        if plan.template is not None:
            found = template_problems(plan.agent, plan.template, environ if here else None)
            problems += found
            if plan.cli_kind and not plan.direct:  # metered: flotilla itself calls the model
                model_ok(plan.model or settings.model, f"--agent {plan.agent} --model {plan.model or '(default)'}")
                problems += _sandboxed(plan.agent, settings)
            if here and not found:
                warnings += version_warnings(plan.agent, plan.template, settings, environ)
            continue
        spec = agents.get(plan.agent)
        if spec is None:
            why = [str(e) for e in broken if Path(e.path).stem == plan.agent] or [
                f"no such agent; flotilla agents: {', '.join(sorted(agents))}; external: {EXTERNAL}"]
            problems += [f"--agent {plan.agent}: {w}" for w in why]
            continue
        model_ok(plan.model or _agent_model(spec, settings, catalog, environ), f"--model {plan.model or '(default)'}")
        # the agent file's own fallbacks and advisor, unless the flags override them (as the run does)
        for fallback in plan.fallback or spec.fallback_model:
            model_ok(fallback, f"--fallback-model {fallback}" if plan.fallback else
                     f"{spec.source}: fallbackModel {fallback}")
        if spec.advisor:
            model_ok(spec.advisor, f"{spec.source}: advisor {spec.advisor}")
    if judge:
        model_ok(judge, f"--judge {judge}", key=True)
    if problems:
        raise UserError("the race cannot start (nothing was created):\n  " + "\n  ".join(dict.fromkeys(problems)))
    try:
        program = _program(check)
    except ValueError:  # unbalanced quotes: the shell will say so when the check runs
        program = None
    if program and here and not _found(program, environ):
        warnings.append(f"--check {check!r}: {program!r} is not found on PATH (fine if the setup command creates it)")
    return warnings


def _sandboxed(agent: str, settings: Any) -> list[str]:
    """A metered CLI confined with the network off could not reach its gateway on the host's loopback."""
    from ..workspaces.sandbox import SandboxConfig

    config = settings.section("sandbox", SandboxConfig) if settings is not None else SandboxConfig()
    if config.external and config.network == "off" and config.mode != "off":
        return [f"--agent {agent}: [sandbox] external = true with the network off would cut it off from the "
                "gateway that meters it; set direct = true under [race.agents." + agent + "] (its cost is then "
                "unknown), or [sandbox] network = \"on\""]
    return []


def version_warnings(agent: str, template: str, settings: Any, environ: Mapping[str, str]) -> list[str]:
    """A warning when the CLI is older than the version its template was verified on (or says none)."""
    from ._race_plan import race_config
    from ..kernel.external import external_cli

    cli = external_cli(agent, race_config(settings).agents)
    if cli is None or not cli.min_version:
        return []
    program = _program(render(template, spec="x", model="x", workspace=Path("."), spec_file=Path("x")))
    try:
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30,
                              env=dict(environ), stdin=subprocess.DEVNULL)
        said = done.stdout + done.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        said = str(exc)
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", said)
    want = tuple(int(p) for p in cli.min_version.split("."))
    if found is None:
        return [f"--agent {agent}: `{program} --version` gave no version; its template was verified on "
                f"{cli.min_version}"]
    have = tuple(int(p) for p in found.groups())
    if have < want:
        return [f"--agent {agent}: {program} {found.group(0)} is older than {cli.min_version}, the version its "
                "template was verified on; upgrade it if the attempt fails"]
    return []


def template_problems(agent: str, template: str, environ: Mapping[str, str] | None) -> list[str]:
    """A command template that cannot be filled in, or whose program is not on ``environ``'s
    ``PATH`` (not looked for when ``environ`` is None: the attempts run elsewhere)."""
    try:
        command = render(template, spec="spec", model="model", workspace=Path("."), spec_file=Path("spec.md"))
    except UserError as exc:
        return [f"--agent {agent}: {exc}"]
    try:
        program = _program(command)
    except ValueError as exc:
        return [f"--agent {agent}: the command {command!r} cannot be parsed ({exc})"]
    if program and environ is not None and not _found(program, environ):
        return [f"--agent {agent}: {program!r} is not found on PATH; install it, or give its full path"]
    return []


def _agent_model(spec: Any, settings: Any, catalog: Any, environ: Mapping[str, str]) -> str:
    from ..agents.wiring import resolve_model_name

    try:
        return resolve_model_name(spec, settings, catalog, environ=dict(environ))
    except UserError:
        return spec.model  # check_model names the problem


def _program(command: str) -> str | None:
    """The program a shell command line starts (after any ``VAR=value`` assignments)."""
    for word in shlex.split(command):
        if "=" in word and not word.startswith(("=", "/", ".")) and word.split("=", 1)[0].isidentifier():
            continue
        return word
    return None


def _found(program: str, environ: Mapping[str, str]) -> bool:
    if "/" in program:
        return os.access(program, os.X_OK)
    if shutil.which(program, path=environ.get("PATH")):
        return True
    # a shell builtin or keyword (cd, export, if …) is not on PATH but runs
    return subprocess.run(["sh", "-c", 'command -v "$1"', "sh", program], capture_output=True).returncode == 0
