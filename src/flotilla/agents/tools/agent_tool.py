"""The ``Agent`` tool: runs a subagent by name, with a fresh context.

The subagent sees only its own system prompt and the prompt given here. The
calling agent gets back the subagent's final message, the files it changed and
its cost, never its transcript (that is in the store, under the subagent's run).
"""

from __future__ import annotations

from typing import Any

from .base import ToolContext, ToolOutput
from .schema import validate

SUBAGENTS = "subagents"
"""The key in ``ToolContext.extras`` under which the runtime puts its subagent runner."""


class AgentTool:
    """Claude Code's ``Agent`` (formerly ``Task``) tool."""

    name = "Agent"
    read_only = True
    """It writes nothing itself; a subagent of a read-only run is held read-only by the runtime."""
    description = (
        "Launch a subagent to handle a self-contained piece of work (research, a change in one area, "
        "a review) in a fresh context. It sees only the prompt you write, so include everything it "
        "needs: the goal, the relevant paths, and what to report back. You get back its final "
        "message, the files it changed and its cost. Several Agent calls in one reply run in parallel."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "description": {"type": "string", "description": "A short (3-5 word) label for the task."},
            "prompt": {"type": "string", "description": "The complete task for the subagent."},
            "subagent_type": {"type": "string",
                              "description": "Which agent to run (default: general-purpose)."},
        },
        "required": ["prompt"],
    }

    def __init__(self, agents: dict[str, str] | None = None) -> None:
        """``agents`` maps the names the run may start to their descriptions, listed for the model."""
        if agents:
            # Per instance, so that the agents listed are those of the project the run is in.
            listing = "\n".join(f"- {name}: {about[:200]}" for name, about in sorted(agents.items()))
            self.description = f"{type(self).description}\n\nAgents (subagent_type):\n{listing}"

    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        problems = validate(input, self.input_schema)
        if problems:
            return ToolOutput("Invalid input for Agent: " + "; ".join(problems), is_error=True)
        runner = context.extras.get(SUBAGENTS)
        if runner is None:
            return ToolOutput("Agent is not available in this run (no subagent runner).", is_error=True)
        return await runner.run(input.get("subagent_type") or "general-purpose", input["prompt"],
                                input.get("description", ""), read_only=context.read_only)
