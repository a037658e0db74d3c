"""Helpers for the findings-loop tests: scripted writers and reviewers on the calculator repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotilla import Session
from flotilla.config import load_settings
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call

FIXED = "def add(a, b):\n    return a + b\n"
HALF = "def add(a, b):\n    return a + b  # TODO\n\n\ndef sub(a, b):\n    return a + b\n"


def finding(fid: str, severity: str = "P1", confidence: float = 0.9, file: str = "calc.py", lines=(1, 2),
            title: str = "a bug", **more: Any) -> dict[str, Any]:
    return {"id": fid, "severity": severity, "confidence": confidence, "file": file, "line_start": lines[0],
            "line_end": lines[1], "title": title, "body": f"{title}, explained", "suggested_fix": "fix it", **more}


def review(verdict: str = "clean", *findings: dict[str, Any], resolved=(), withdrawn=()) -> Any:
    data: dict[str, Any] = {"verdict": verdict, "findings": list(findings)}
    if resolved:
        data["resolved"] = list(resolved)
    if withdrawn:
        data["withdrawn"] = list(withdrawn)
    return tool_call("submit_review", data)


def write(content: str, path: str = "calc.py", summary: str = "done") -> list[Any]:
    return [tool_call("Write", {"file_path": path, "content": content}), reply(summary)]


def session(repo: Path, writer: list[Any], reviewer: list[Any], **kw: Any) -> tuple[Session, ScriptedModel, ScriptedModel]:
    settings = load_settings(cwd=repo, environ={}, user_file=repo / "no-user-config.toml")
    w = ScriptedModel(writer, name="scripted:claude-writer")
    r = ScriptedModel(reviewer, name="scripted:gpt-reviewer")
    s = Session(project=repo, durable=False, store=SQLiteStore(repo.parent / "store.db"), settings=settings,
                models={w.name: w, r.name: r}, home=repo / "no-home", **kw)
    return s, w, r


async def run_review(repo: Path, writer_steps: list[Any], reviewer_steps: list[Any], task: str | None = "Fix add",
                     **options: Any) -> tuple[dict[str, Any], Any, ScriptedModel, ScriptedModel]:
    s, w, r = session(repo, writer_steps, reviewer_steps)
    async with s:
        if "writer" not in options and task is not None:
            options["writer"] = w.name
        result = await s.review(task, reviewer=r.name, **options)
    return result, s.store, w, r
