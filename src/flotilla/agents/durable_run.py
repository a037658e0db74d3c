"""A durable agent run: ``run_agent`` inside a workflow, each model call and tool call a step.

The workflow takes JSON only (``agent_job``) and rebuilds the agent file, settings, models and tools
from it, so a process that never saw the run (``flotilla resume RUN`` after ``kill -9``, a newer
flotilla) can continue it. What a replay runs again, and what it does not, is said in ``seam.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .. import durable
from ..config import load_settings
from ..store import SQLiteStore
from .result import AgentResult, Limits

LIVE: dict[str, Any] = {}
"""Event sinks (a live display) by run id, for runs started in this process; not durable."""


def agent_job(agent: str, task: str, workspace: Path, *, run_id: str, store: str, model: str | None = None,
              fallback: list[str] | None = None, advisor: str | None = None, limits: Limits | None = None,
              read_only: bool | None = None, parent_run_id: str | None = None) -> dict[str, Any]:
    """The JSON an agent workflow runs from."""
    return {"agent": agent, "task": task, "workspace": str(Path(workspace).resolve()), "run_id": run_id,
            "store": store, "model": model, "fallback": list(fallback or []), "advisor": advisor,
            "limits": dataclasses.asdict(limits or Limits()), "read_only": read_only,
            "parent_run_id": parent_run_id}


@durable.workflow("flotilla.agent")
async def agent_workflow(job: dict[str, Any]) -> dict[str, Any]:
    """Runs (or, on recovery, continues) one agent run and returns its result as JSON."""
    from .loader import get_agent
    from .loop import run_agent

    workspace = Path(job["workspace"])
    settings = load_settings(cwd=workspace)
    spec = get_agent(job["agent"], settings.root)
    result = await run_agent(spec, job["task"], workspace, model=job["model"], fallback=job["fallback"],
                             advisor=job["advisor"], limits=Limits(**job["limits"]), store=SQLiteStore(job["store"]),
                             sink=LIVE.get(job["run_id"]), settings=settings, run_id=job["run_id"],
                             parent_run_id=job["parent_run_id"], read_only=job["read_only"],
                             steps=durable.DurableSteps())
    return result_json(result)


def result_json(result: AgentResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["usage"] = result.usage.wire()
    return data


def result_from_json(data: dict[str, Any]) -> AgentResult:
    from ..messages import Usage

    return AgentResult(**{**data, "usage": Usage.model_validate(data["usage"])})
