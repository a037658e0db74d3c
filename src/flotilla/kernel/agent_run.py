"""An agent run as a task: ``run_agent`` with its collaborators from the Session, through an executor.

``flotilla run`` is this task at the top; a work unit calls ``run_agent_in`` for its worker. Both get
the run's budget meter from the Session (seeded from the store's usage rows, so spend before a crash
and after it is one total), the limits (the configured defaults unless the call sets its own), the
agent loop's seam and recorder from the executor, and the live observers of the top run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..agents.loop import run_agent
from ..agents.result import AgentResult
from ..errors import UserError
from ..messages import Usage
from .executor import Executor, task


@task("flotilla.agent")
async def agent_task(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    """Runs (or, resumed, continues) one agent run; returns its result as JSON."""
    result = await run_agent_in(ex, job["agent"], job["task"], Path(job["workspace"]), run_id=job["run_id"],
                                model=job.get("model"), fallback=job.get("fallback") or [],
                                advisor=job.get("advisor"), max_turns=job.get("max_turns"),
                                timeout_s=job.get("timeout_s"), budget_usd=job.get("budget_usd"),
                                read_only=job.get("read_only"), approve_asks=bool(job.get("approve_asks")))
    return result_json(result)


async def run_agent_in(ex: Executor, agent: str, task: str, workspace: Path, *, run_id: str,
                       parent_run_id: str | None = None, model: str | None = None, fallback: list[str] = (),  # type: ignore[assignment]
                       advisor: str | None = None, max_turns: int | None = None, timeout_s: float | None = None,
                       budget_usd: float | None = None, budget_scope: str | None = None,
                       read_only: bool | None = None, approve_asks: bool = False, rebuild: bool = False,
                       project: Path | None = None, submit: Any = None, deny: tuple[str, ...] = ()) -> AgentResult:
    """Runs agent ``agent`` on ``task`` in ``workspace``. ``budget_scope`` names the run whose meter it
    spends from (a race's attempts share the race's); ``rebuild`` replays recorded file tools into a
    workspace made afresh (a resumed unit adopted by another machine). ``project`` is the repository
    whose configuration applies (a unit's worktree belongs to it); default the workspace. ``submit``: an
    ``agents.submit.Submission`` whose validated input is the run's answer. ``deny``: permission rules
    the runtime adds (``Limits.deny``)."""
    session = ex.session
    settings = session.settings_for(project or workspace)
    agents = session.agents_for(settings.root)
    spec = require_agent(agents, agent)
    return await run_agent(spec, task, workspace, model=model, fallback=tuple(fallback), advisor=advisor,
                           limits=session.limits(max_turns=max_turns, wall_clock_s=timeout_s, budget_usd=budget_usd,
                                                 approve_asks=approve_asks or None, deny=tuple(deny) or None),
                           store=ex.recorder(run_id, session.store), sink=session.observer(parent_run_id or run_id),
                           settings=settings, model_factory=lambda name: session.build_model(name, settings), run_id=run_id,
                           parent_run_id=parent_run_id, read_only=read_only,
                           meter=session.meter(budget_scope or run_id), agents=agents, steps=ex.steps(rebuild=rebuild),
                           submit=submit)


def result_json(result: AgentResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["usage"] = result.usage.wire()
    return data


def result_from_json(data: dict[str, Any]) -> AgentResult:
    return AgentResult(**{**data, "usage": Usage.model_validate(data["usage"])})


def require_agent(agents: dict[str, Any], name: str) -> Any:
    spec = agents.get(name)
    if spec is None:
        raise UserError(f"no agent named {name!r}; known: {', '.join(sorted(agents)) or 'none'}")
    return spec
