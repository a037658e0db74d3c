"""Helpers for the pipeline tests: one scripted model per role on the calculator repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotilla import Session
from flotilla.config import load_settings
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call
from review_support import FIXED, finding, review, write  # noqa: F401

PLAN = {"plan": "# Plan\n\n- fix add in calc.py\n- a page in ui.html\n- tests in test_calc.py",
        "files": ["calc.py", "ui.html", "test_calc.py"], "summary": "fix add, add a page"}
SUB = FIXED + "\n\ndef sub(a, b):\n    return a - b\n"


def roles(**overrides: list[Any]) -> dict[str, list[Any]]:
    """The default pipeline's roles, each a script: the architect tries a write (refused), then plans."""
    scripts = {
        "architect": [tool_call("Write", {"file_path": "hack.txt", "content": "x"}), tool_call("submit_plan", PLAN)],
        "backend": [*write("def add(a, b):\n    return a + b if a else b\n", summary="fixed add"),
                    *write(SUB, summary="fixed the finding")],
        "frontend": [*write("<p>calc</p>\n", path="ui.html", summary="added the page"), reply("nothing for me")],
        "test-writer": [*write("import calc\n", path="extra.py", summary="added tests")],
        "security-reviewer": [review("changes_needed", finding("branch", "P1", 0.8)),
                              review("clean", resolved=["branch"])],
    }
    scripts.update(overrides)
    return scripts


def session(repo: Path, scripts: dict[str, list[Any]], **kw: Any) -> tuple[Session, dict[str, ScriptedModel]]:
    settings = load_settings(cwd=repo, environ={}, user_file=repo / "no-user-config.toml")
    models = {k: ScriptedModel(v, name=f"scripted:{k}") for k, v in scripts.items()}
    s = Session(project=repo, durable=False, store=SQLiteStore(repo.parent / "store.db"), settings=settings,
                models={m.name: m for m in models.values()}, home=repo / "no-home", **kw)
    return s, models


def stage_models(scripts: dict[str, list[Any]]) -> dict[str, str]:
    return {k: f"scripted:{k}" for k in scripts}
