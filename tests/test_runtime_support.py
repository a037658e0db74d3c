"""Helpers for the agent-runtime tests (tests/test_runtime_*.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotilla.agents import AgentSpec, Limits, run_agent
from flotilla.config import Settings
from flotilla.errors import UnknownModel
from flotilla.events import ListSink
from flotilla.messages import MessagesRequest, ToolResultBlock
from flotilla.store import SQLiteStore


def settings_for(root: Path, **data: Any) -> Settings:
    """Settings with no user file and no environment: only what the test gives."""
    return Settings({"model": "scripted:exec", **data}, {}, root)


def factory(**models: Any):
    """A model factory over ``provider:model`` names; unknown names fail loudly."""
    def build(name: str) -> Any:
        if name not in models:
            raise UnknownModel(name, sorted(models))
        return models[name]
    return build


def spec(name: str = "worker", **fields: Any) -> AgentSpec:
    fields.setdefault("system_prompt", f"You are {name}.")
    return AgentSpec(name=name, **fields)


async def run(agent: AgentSpec, task: str, root: Path, models: dict[str, Any], *, store: SQLiteStore | None = None,
              sink: ListSink | None = None, limits: Limits | None = None, settings: Settings | None = None,
              **kw: Any):
    """Runs ``agent`` with scripted models named in ``models``; returns (result, store, sink)."""
    store = store or SQLiteStore(root / "store.db")
    sink = sink or ListSink()
    kw.setdefault("model", "scripted:exec")
    result = await run_agent(agent, task, root, store=store, sink=sink, limits=limits,
                             settings=settings or settings_for(root), model_factory=factory(**models), **kw)
    return result, store, sink


def results_in(request: MessagesRequest) -> list[ToolResultBlock]:
    """The tool results of the request's last message."""
    return [b for b in request.messages[-1].blocks() if isinstance(b, ToolResultBlock)]


def tool_names(request: MessagesRequest) -> list[str]:
    return [t.name for t in request.tools or []]
