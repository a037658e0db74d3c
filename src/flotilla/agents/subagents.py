"""Running subagents for one parent run: depth and concurrency limits, and what comes back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .spec import AgentSpec
from .tools.base import ToolOutput


@dataclass
class Subagents:
    """The parent's side of the ``Agent`` tool.

    ``run_kwargs`` are passed on to ``run_agent`` for each child (store, sink,
    settings, model factory, shared meter, limits …). Each parent has its own
    semaphore, so a child waiting for a grandchild can never deadlock its parent.
    """

    agents: dict[str, AgentSpec]
    parent_run_id: str
    parent_model: str
    depth: int
    max_depth: int
    max_parallel: int
    run_kwargs: dict[str, Any]
    cost_usd: float = 0.0
    files_changed: list[str] = field(default_factory=list)
    _gate: asyncio.Semaphore | None = None

    async def run(self, name: str, prompt: str, description: str = "", *, read_only: bool = False) -> ToolOutput:
        """Runs agent ``name`` on ``prompt``; its result, summarised, is the tool output."""
        from .loop import run_agent  # the loop imports this module

        if self.depth + 1 > self.max_depth:
            return ToolOutput(f"Subagent refused: the depth limit is {self.max_depth} and this run is already "
                              f"at depth {self.depth}. Do this part of the work yourself.", is_error=True)
        spec = self.agents.get(name)
        if spec is None:
            return ToolOutput(f"No agent named {name!r}. Agents: {', '.join(sorted(self.agents))}.", is_error=True)
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.max_parallel)
        async with self._gate:
            result = await run_agent(
                spec, prompt, parent_run_id=self.parent_run_id, parent_model=self.parent_model,
                depth=self.depth + 1, agents=self.agents,
                # A subagent of a read-only run must not be a way around it.
                read_only=True if read_only else None, **self.run_kwargs)
        self.cost_usd += result.cost_usd
        for path in result.files_changed:
            if path not in self.files_changed:
                self.files_changed.append(path)
        files = ", ".join(result.files_changed) or "none"
        status = "finished" if result.stop_reason == "end_turn" else f"stopped ({result.stop_reason})"
        footer = (f"[subagent {spec.name} {status}; run {result.run_id}; files changed: {files}; "
                  f"cost ${result.cost_usd:.4f}]")
        if result.error:
            footer += f"\n[error: {result.error}]"
        return ToolOutput(f"{result.text}\n\n{footer}".strip(), is_error=result.stop_reason == "error",
                          files_changed=list(result.files_changed))
