"""The bounds every run gets unless told otherwise, so that a model calling tools forever still ends.

A model that never ends its turn made 171 calls in 30 seconds of ``flotilla
run``. Every agent run (subagents and race attempts included) is therefore
bounded in model calls and in wall-clock time by default. The defaults are
the ``[limits]`` table of flotilla's configuration::

    [limits]
    max_turns = 100        # model calls one run may make; 0: no bound
    wall_clock_s = 1800    # seconds one run may take; 0: no bound

A ``Limits`` given to ``run_agent`` (``--max-turns``, ``--timeout``) wins;
an agent file's ``maxTurns`` comes between the two for turns.
"""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from .result import Limits

SECTION = "limits"


class LimitsConfig(BaseModel):
    """The ``[limits]`` table of flotilla's configuration: the default bounds of every agent run."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(100, ge=0)
    """Model calls one agent run may make (each subagent counts its own); 0 for no bound."""
    wall_clock_s: float = Field(1800.0, ge=0)
    """Seconds one agent run may take, its tools and subagents included; 0 for no bound."""

    @classmethod
    def load(cls, settings: Settings | None) -> LimitsConfig:
        """The configured defaults; a bad value raises ``ConfigError`` naming the file and the key."""
        return cls() if settings is None else settings.section(SECTION, cls)


def effective_limits(limits: Limits | None, settings: Settings | None, *,
                     agent_max_turns: int | None = None) -> Limits:
    """``limits`` with each bound it leaves None filled in: the agent file's ``maxTurns``, then ``[limits]``.

    A bound of 0 (from anywhere) means no bound, and comes back as None.
    """
    config = LimitsConfig.load(settings)
    limits = limits or Limits()
    turns = next(t for t in (limits.max_turns, agent_max_turns, config.max_turns) if t is not None)
    clock = limits.wall_clock_s if limits.wall_clock_s is not None else config.wall_clock_s
    return dataclasses.replace(limits, max_turns=turns or None, wall_clock_s=clock or None)
