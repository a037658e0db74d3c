"""Turning the race's flags and configuration into attempt plans, and estimating their cost."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import UserError
from ..workspaces import DEFAULT_DIR
from ._attempt import AttemptPlan
from ..kernel.external import external_cli


class RaceConfig(BaseModel):
    """The ``[race]`` section of flotilla.toml."""

    model_config = ConfigDict(extra="forbid")

    check: str | None = None
    """The check command run in each worktree when --check is not given (``pytest -q``, say)."""
    setup: str | None = None
    """A command run in each new worktree before its attempt starts (``uv sync``, ``npm ci`` …)."""
    worktree_dir: str = DEFAULT_DIR
    """Where worktrees go, relative to the repository root; git is told to ignore it."""
    parallel: int | None = None
    """How many attempts run at once; None runs them all at once."""
    check_timeout_s: float = 600.0
    """Seconds a check (and the setup command) may take."""
    agent_timeout_s: float = 1800.0
    """Seconds an external agent CLI may take."""
    agents: dict[str, str | dict[str, Any]] = {}
    """External agents by name: a command template, or a table ``{command, kind, min_version, direct}``;
    they override the built-in ones (claude-code, codex, gemini, aider)."""
    tokens_per_attempt: int = 300_000
    """Input tokens one attempt is assumed to use, for the estimate printed before starting."""
    output_tokens_per_attempt: int = 30_000
    """Output tokens one attempt is assumed to use, for the estimate."""


def race_config(settings: Any) -> RaceConfig:
    return settings.section("race", RaceConfig) if settings is not None else RaceConfig()


def build_plans(models: list[str], *, n: int = 1, agent: str = "implementer", config: RaceConfig,
                default_model: str = "", fallback: list[str] | None = None) -> list[AttemptPlan]:
    """One plan per model, ``n`` times each (``a1``, ``a2`` …), for a flotilla agent or an external CLI."""
    if n < 1:
        raise UserError(f"-n must be at least 1 (got {n})")
    cli = external_cli(agent, config.agents)
    template = cli.command if cli else None
    if template is not None and "{model}" not in template and models:
        raise UserError(f"--agent {agent}: its command has no {{model}}, so -m {models[0]} would change nothing "
                        "(every attempt would run the same command); drop -m, or put {model} in the command "
                        "under [race.agents] in flotilla.toml")
    models = models or [default_model if template is None or "{model}" in template else ""]
    plans = []
    for model in models:
        for _ in range(n):
            plans.append(AttemptPlan(name=f"a{len(plans) + 1}", agent=agent, model=model,
                                     fallback=list(fallback or []), template=template,
                                     cli_kind=cli.kind if cli else None, direct=cli.direct if cli else False))
    return plans


def estimate(plans: list[AttemptPlan], *, config: RaceConfig, catalog: Any = None,
             agents: dict[str, Any] | None = None) -> tuple[list[float | None], float]:
    """Per-attempt USD estimates (None when unknown: external CLIs, unpriced models) and their sum.

    An attempt's estimate is its agent's ``budget_usd`` when the agent file sets one, else the
    configured tokens per attempt priced from the catalog.
    """
    from ..messages import Usage

    per: list[float | None] = []
    for plan in plans:
        spec = (agents or {}).get(plan.agent)
        if plan.template is not None and (plan.cli_kind is None or plan.direct):
            per.append(None)
        elif spec is not None and getattr(spec, "budget_usd", None):
            per.append(float(spec.budget_usd))
        elif catalog is not None and plan.model:
            try:
                name = catalog.resolve(plan.model)
            except UserError:
                per.append(None)
                continue
            info = catalog.info(name)
            usage = Usage(input_tokens=config.tokens_per_attempt, output_tokens=config.output_tokens_per_attempt)
            per.append(info.cost(usage) if info else None)
        else:
            per.append(None)
    return per, sum(p for p in per if p)


def estimate_line(plans: list[AttemptPlan], per: list[float | None], *, budget_usd: float | None = None) -> str:
    """The line printed before a race starts: what it should cost, or why that is not known.

    A cost that cannot be known is said to be unknown, with the fix, never shown as ``$0.00``.
    """
    attempts = f"{len(plans)} attempt{'s' if len(plans) != 1 else ''}"
    cap = f", capped at ${budget_usd:.2f}" if budget_usd is not None else ""
    known = [p for p in per if p is not None]
    if len(known) == len(per) and known:
        return f"estimate: {attempts} × ~${sum(known) / len(known):.2f} = ~${sum(known):.2f}{cap}"
    why = []
    unpriced = sorted({p.model for p, cost in zip(plans, per) if cost is None and p.template is None and p.model})
    if unpriced:
        has = "has" if len(unpriced) == 1 else "have"
        fix = " and ".join(f'[models."{m}"]' for m in unpriced)
        why.append(f"{', '.join(unpriced)} {has} no price; set {fix} in flotilla.toml")
    external = sorted({p.agent for p, cost in zip(plans, per) if cost is None and p.template is not None})
    if external:
        why.append(f"{', '.join(external)} report{'s' if len(external) == 1 else ''} no cost")
    if any(cost is None and p.template is None and not p.model for p, cost in zip(plans, per)):
        why.append("the default model has no price")
    priced = f", ~${sum(known):.2f} for the {len(known)} priced" if known else ""
    return f"estimate: {attempts}{priced}, cost unknown: {'; '.join(why)}{cap}"
