"""Helpers for the fan-out tests: the demo's shop repository, scripted leads and workers, a Session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotilla import Session
from flotilla.config import load_settings
from flotilla.demo_fanout import CHECK, PLAN, WORKERS, fix, lead_steps, make_shop, slice_plan, test_command
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call

__all__ = ["CHECK", "PLAN", "WORKERS", "fix", "lead_steps", "make_shop", "slice_plan", "test_command", "fanout",
           "session", "workers", "reply", "tool_call", "ScriptedModel"]


def workers(scripts: dict[str, list[Any]]) -> dict[str, Any]:
    """A fresh scripted model per worker run, by name ``scripted:<key>``."""
    return {f"scripted:{k}": (lambda k=k, s=s: ScriptedModel(list(s), name=f"scripted:{k}")) for k, s in scripts.items()}


def session(repo: Path, lead: ScriptedModel, scripts: dict[str, list[Any]], **kw: Any) -> Session:
    settings = load_settings(cwd=repo, environ={}, user_file=repo / "no-user-config.toml")
    return Session(project=repo, durable=False, store=SQLiteStore(repo.parent / "store.db"), settings=settings,
                   models={"scripted:lead": lead, **workers(scripts)}, home=repo / "no-home", **kw)


async def fanout(repo: Path, lead: ScriptedModel, scripts: dict[str, list[Any]], **options: Any) -> tuple[dict, Any]:
    options.setdefault("models", [f"scripted:{k}" for k in scripts] or ["scripted:lead"])
    options.setdefault("check", CHECK)
    async with session(repo, lead, scripts) as s:
        return await s.fanout("Fix the bugs the failing tests show.", lead="scripted:lead", **options), s.store
