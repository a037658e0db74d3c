"""A work unit's worker when it is an external CLI: one step that runs it, metered when flotilla knows
how to point it at a gateway (``_metered``), and records what it did. (The unit and its worktree are
``unit.WorkUnit`` and ``workspaces.Worktree``: typed loosely, since ``unit`` imports this module.)"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..events import ExternalRan, MessageAdded, RunStarted
from ..workspaces import ensure_excluded
from ..workspaces.sandbox import Sandbox
from ._cli_env import cli_model, gateway_env, resolve
from ._metered import metered as metered_gateway
from ._transcript import transcript
from .external import ARTIFACTS, OUTPUT_TAIL, Cli, ExternalResult, run_external

async def external_step(session: Any, unit: Any, worktree: Any, sandbox: Sandbox) -> dict[str, Any]:
    """The ``unit:external`` step: the CLI run, recorded (command, exit code, output, transcript), its
    own files kept out of the attempt's work."""
    session.store.create_run("attempt", f"{unit.name}: {unit.worker.agent}", parent_id=unit.parent_id,
                             meta={"agent": unit.worker.agent, "model": unit.worker.model,
                                   "workspace": str(worktree.path)}, run_id=unit.run_id, exist_ok=True)
    session.emit(RunStarted(run_id=unit.run_id, kind="attempt", title=unit.name, parent_id=unit.parent_id))
    from ..agents.limits import LimitsConfig

    settings = session.settings_for(Path(unit.root))
    timeout = unit.timeout_s or LimitsConfig.load(settings).wall_clock_s or None
    gitignore = worktree.path / ".gitignore"
    had_gitignore = gitignore.exists()
    done, metered = await run_cli(session, unit, worktree, settings, timeout, sandbox)
    if gitignore.exists() and not had_gitignore:
        gitignore.unlink()  # the CLI's own (aider's), never the attempt's work
    session.emit(ExternalRan(run_id=unit.run_id, agent=unit.worker.agent, command=done.command,
                             exit_code=done.exit_code, output=done.output, duration_ms=done.duration_s * 1000,
                             metered=metered))
    for message in transcript(unit.worker.cli_kind, done.output):
        session.emit(MessageAdded(run_id=unit.run_id, message=message))
    tail = done.output[-OUTPUT_TAIL:]
    if done.timed_out:
        return {"output": tail, "error": f"{unit.worker.agent} timed out after {timeout:g}s", "stop": "timeout"}
    if not done.ok:
        return {"output": tail, "stop": "error",
                "error": f"{unit.worker.agent} exited {done.exit_code}: {done.output.strip()[-300:]}"}
    return {"output": tail, "error": None, "stop": "end_turn"}


async def run_cli(session: Any, unit: Any, worktree: Any, settings: Any, timeout: float | None,
                  sandbox: Sandbox) -> tuple[ExternalResult, bool]:
    """Runs the unit's CLI, through its own metered gateway when flotilla knows how to point it at one;
    returns what it did and whether it was metered."""
    worker = unit.worker
    assert worker.template is not None
    ensure_excluded(worktree.repo, *ARTIFACTS)
    cli = Cli(worker.template, worker.cli_kind, direct=worker.direct)
    sandbox = sandbox.for_external()
    model_name = worker.model or (settings.model if cli.metered else "")
    model = cli_model(cli.kind, model_name, session.catalog, metered=cli.metered)
    if not cli.metered:
        done = await run_external(worker.template, spec=unit.instructions, model=model, workspace=worktree.path,
                                  timeout=timeout, sandbox=sandbox)
        return done, False
    home = Path(tempfile.mkdtemp(prefix=f"flotilla-{unit.name}-"))
    chain = [resolve(m, session.catalog) for m in [model_name, *worker.fallback]]
    try:
        with metered_gateway(session, run_id=unit.run_id, scope=unit.budget_scope or unit.run_id, settings=settings,
                     chain=chain, budget_usd=unit.budget_usd, home=home / "gateway") as gateway:
            assert cli.kind is not None
            env = gateway_env(cli.kind, url=gateway.url, key=gateway.key, home=home / "home", model=model,
                              info=session.catalog.info(chain[0]))
            done = await run_external(worker.template, spec=unit.instructions, model=model,
                                      workspace=worktree.path, timeout=timeout, env=env, sandbox=sandbox)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return done, True
