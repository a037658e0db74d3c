"""Turning names into things for a run: model names into stacked models, providers into their kind."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Settings
from ..models.budget import Budget, Meter
from ..models.catalog import Catalog
from ..models.stack import build_stack
from ..protocols import EventSink, Model
from .spec import AgentSpec

ModelFactory = Callable[[str], Model]


def resolve_model_name(spec: AgentSpec, settings: Settings, catalog: Catalog, *,
                       override: str | None = None, parent_model: str | None = None,
                       environ: dict[str, str] | None = None) -> str:
    """The ``provider:model`` a run uses.

    ``override`` (``--model``) beats the agent file. ``inherit`` or no model
    takes ``FLOTILLA_SUBAGENT_MODEL`` (or ``subagent_model`` in flotilla.toml),
    else ``CLAUDE_CODE_SUBAGENT_MODEL``, else the parent's model, else the
    configured default model.
    """
    name = (override or spec.model or "inherit").strip()
    if name in ("", "inherit"):
        env = os.environ if environ is None else environ
        name = (settings.get("subagent_model") or env.get("FLOTILLA_SUBAGENT_MODEL")
                or env.get("CLAUDE_CODE_SUBAGENT_MODEL") or parent_model or settings.model)
    return catalog.resolve(str(name))


def default_factory(settings: Settings, catalog: Catalog) -> ModelFactory:
    """``flotilla.models.providers.build_model`` bound to this configuration."""
    from ..models.providers import build_model

    return lambda name: build_model(name, settings=settings, catalog=catalog)


def stacked_model(factory: ModelFactory, name: str, fallback: Sequence[str], *, catalog: Catalog,
                  sink: EventSink, run_id: str, role: str, meter: Meter,
                  budget_usd: float | None) -> Budget:
    """The concrete model for ``name`` with its fallbacks, usage accounting, retry and budget."""
    primary = factory(name)
    fallbacks = [factory(catalog.resolve(f)) for f in fallback]
    return build_stack(primary, fallbacks=fallbacks, catalog=catalog, sink=sink, run_id=run_id,
                       role=role, meter=meter, budget_usd=budget_usd)


def provider_kind(settings: Settings, model_name: str) -> str:
    """The wire API a ``provider:model`` speaks: ``anthropic``, ``openai`` or ``scripted``."""
    provider = model_name.split(":", 1)[0]
    config = settings.providers().get(provider)
    return config.kind if config is not None else "anthropic"


def split_names(value: Any) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` as a list of names."""
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]
