"""Running subagents for one parent run: depth and concurrency limits, and what comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .result import AgentResult
from .spec import AgentSpec
from .tools.base import ToolOutput

RunChild = Callable[[AgentSpec, str, bool], Awaitable[AgentResult]]
"""``run_child(spec, prompt, read_only)``: runs one child agent to its end; the parent's loop supplies it."""


@dataclass
class Subagents:
    """The parent's side of the ``Agent`` tool: which child may run, how many at once, what comes back.

    ``run_child`` runs one child (the parent's loop gives it, holding the
    store, sink, settings, models, shared meter and limits), so this module
    needs nothing of the loop. Each parent has its own semaphore, so a child
    waiting for a grandchild can never deadlock its parent.
    """

    agents: dict[str, AgentSpec]
    depth: int
    max_depth: int
    max_parallel: int
    run_child: RunChild
    cost_usd: float = 0.0
    files_changed: list[str] = field(default_factory=list)
    _gate: asyncio.Semaphore | None = None

    async def run(self, name: str, prompt: str, description: str = "", *, read_only: bool = False) -> ToolOutput:
        """Runs agent ``name`` on ``prompt``; its result, summarised, is the tool output."""
        if self.depth + 1 > self.max_depth:
            return ToolOutput(f"Subagent refused: the depth limit is {self.max_depth} and this run is already "
                              f"at depth {self.depth}. Do this part of the work yourself.", is_error=True)
        spec = self.agents.get(name)
        if spec is None:
            return ToolOutput(f"No agent named {name!r}. Agents: {', '.join(sorted(self.agents))}.", is_error=True)
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.max_parallel)
        async with self._gate:
            result = await self.run_child(spec, prompt, read_only)
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
