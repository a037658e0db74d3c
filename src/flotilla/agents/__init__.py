"""Agents: Markdown agent files, the agent loop, subagents, hooks, the advisor and steering."""

from .loader import builtin_agents, get_agent, load_agents, parse_agent
from .loop import run_agent
from .result import STOP_REASONS, AgentResult, Limits
from .spec import AgentSpec

__all__ = ["AgentResult", "AgentSpec", "Limits", "STOP_REASONS", "builtin_agents", "get_agent", "load_agents",
           "parse_agent", "run_agent"]
