"""An eval's task set and its race configurations, read and checked before anything runs.

A task set is a folder with one sub-folder per task, or a JSONL file with one task per line:

- folder form, ``TASKS/<id>/``: ``task.toml`` (``spec``, ``check``, ``hidden_check``; optionally
  ``repo`` and ``commit``), ``repo/`` (the project's files, made into a fresh git repository) unless
  ``repo`` names one, and ``hidden/`` (files added only for the hidden check);
- JSONL form: ``{"id", "repo" (a path relative to the file, or a git URL), "commit"?, "spec", "check",
  "hidden_check", "hidden_files"?: {"path": "content"}}``.

The hidden check and its files never reach an attempt: the task's repository is built from ``repo``
alone, and the hidden files are written only into a clean checkout of an attempt's commit after the
race has picked its winner. ``{python}`` in a check stands for this Python interpreter.
"""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import UserError
from ..workspaces._git import git


@dataclass
class EvalTask:
    id: str
    spec: str
    check: str
    hidden_check: str
    repo: str
    """A folder of files (made into a git repository) or a git URL / repository path with ``commit``."""
    commit: str | None = None
    hidden_files: dict[str, str] = field(default_factory=dict)


class _TaskFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    spec: str
    check: str
    hidden_check: str
    repo: str | None = None
    commit: str | None = None
    hidden_files: dict[str, str] = {}


class EvalConfig(BaseModel):
    """One race configuration of an eval (a TOML file): which attempts, and how the winner is picked."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    """How the report names it (default: the file's stem)."""
    models: list[str] = []
    """Models to race (default: the project's default model)."""
    samples: int | None = None
    """Attempts per model (default: eval's -n, else 1)."""
    agent: str = "implementer"
    """A flotilla agent or an external one (``cmd:…``); ``{config_dir}`` is this file's folder."""
    select: str | None = None
    judge: str | None = None
    parallel: int | None = None
    max_turns: int | None = None
    attempt_timeout_s: float | None = None


def _python(text: str) -> str:
    return text.replace("{python}", sys.executable)


def load_tasks(path: Path) -> list[EvalTask]:
    """The tasks of a folder or JSONL task set; a bad task is a ``UserError`` naming its file and field."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no task set at {path}: give a folder of tasks or a .jsonl file")
    if path.is_file():
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line), path.parent))
                except ValueError as exc:
                    raise UserError(f"{path}:{number} is not JSON ({exc})") from None
    else:
        folders = sorted(p for p in path.iterdir() if (p / "task.toml").is_file())
        if not folders:
            raise UserError(f"{path} has no tasks: each task is a folder with a task.toml")
        rows = []
        for folder in folders:
            try:
                data = tomllib.loads((folder / "task.toml").read_text())
            except tomllib.TOMLDecodeError as exc:
                raise UserError(f"{folder / 'task.toml'}: {exc}") from None
            data.setdefault("id", folder.name)
            if "repo" not in data:
                data["repo"] = str(folder / "repo")
            hidden = folder / "hidden"
            if hidden.is_dir():
                data["hidden_files"] = {str(f.relative_to(hidden)): f.read_text()
                                        for f in sorted(hidden.rglob("*")) if f.is_file()}
            rows.append((str(folder / "task.toml"), data, folder))
    tasks = []
    for where, data, base in rows:
        try:
            fields = _TaskFields(**data)
        except (ValidationError, TypeError) as exc:
            raise UserError(f"{where}: {str(exc).splitlines()[0]}; a task has spec, check, hidden_check and repo "
                            f"({exc})") from None
        if not fields.id or not fields.repo:
            raise UserError(f"{where}: a task needs an id and a repo")
        repo = fields.repo if "://" in fields.repo or fields.repo.startswith("git@") else str((base / fields.repo))
        tasks.append(EvalTask(fields.id, fields.spec, _python(fields.check), _python(fields.hidden_check), repo,
                              fields.commit, dict(fields.hidden_files)))
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: task ids repeat ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))})")
    return tasks


def load_config(path: Path) -> EvalConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path}: no such file")
    try:
        config = EvalConfig(**tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--config {path}: {exc}") from None
    except ValidationError as exc:
        raise UserError(f"--config {path}: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}; the keys are "
                        f"{', '.join(EvalConfig.model_fields)}") from None
    config.name = config.name or path.stem
    config.agent = _python(config.agent.replace("{config_dir}", str(path.parent.resolve())))
    return config


def prepare_repo(task: EvalTask, dest: Path) -> Path:
    """A fresh repository for one race of ``task`` at ``dest``: the folder's files committed, or a clone
    checked out at ``commit`` on a branch of its own."""
    source = Path(task.repo)
    if dest.exists():
        shutil.rmtree(dest)
    if source.is_dir() and not (source / ".git").exists():
        shutil.copytree(source, dest)
        git(dest, "init", "-q", "-b", "main")
        git(dest, "add", "-A")
        git(dest, "-c", "user.name=flotilla eval", "-c", "user.email=eval@flotilla.invalid", "commit", "-q", "-m",
            f"task {task.id}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(dest.parent, "clone", "-q", task.repo, str(dest))
    if task.commit:
        git(dest, "checkout", "-q", "-B", "eval", task.commit)
    return dest


def hidden_check_dir(repo: Path, commit: str, dest: Path, task: EvalTask) -> Path:
    """A clean checkout of ``commit`` (no worktree of the race's) with the hidden files written in."""
    if dest.exists():
        shutil.rmtree(dest)
    git(repo, "worktree", "add", "-q", "--detach", str(dest), commit)
    for name, text in task.hidden_files.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return dest


def to_json(task: EvalTask) -> dict[str, Any]:
    return task.__dict__.copy()
