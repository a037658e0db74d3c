"""``flotilla gc``: remove what crashed runs left behind, and nothing else.

A run crashed when the store still says ``running`` but the process that
recorded it is gone. Its worktrees, ``flotilla/<run>/…`` branches and worktree
locks are removed; runs that finished (their kept branches, ``--keep``
worktrees) and runs still going are left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ._git import Repo, git
from .worktree import BRANCH_PREFIX, DEFAULT_DIR, flotilla_branches, registered_worktrees, remove_worktree, \
    worktree_root


@dataclass
class GcReport:
    removed_worktrees: list[str] = field(default_factory=list)
    removed_branches: list[str] = field(default_factory=list)
    crashed_runs: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    """run id → why its leftovers were kept (finished, still running, unknown to the store)."""


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def run_state(store: Any, run_id: str) -> str:
    """``crashed``, ``running``, ``waiting for approval``, ``finished`` or ``unknown`` for one run id. A
    run waiting at an approval gate is not crashed when its process has exited: it waits, durably."""
    rows = store.execute("SELECT status, pid, meta FROM runs WHERE id = ?", (run_id,))
    if not rows:
        return "unknown"
    status, pid = rows[0]["status"], rows[0]["pid"]
    if status != "running":
        return "finished"
    if '"awaiting approval"' in (rows[0]["meta"] or ""):
        return "waiting for approval"
    return "running" if pid_alive(pid) else "crashed"


def collect_garbage(repo: Repo, store: Any, *, directory: str = DEFAULT_DIR, dry_run: bool = False) -> GcReport:
    """Removes crashed runs' worktrees, branches and locks; marks those runs failed in the store."""
    report = GcReport()
    root = worktree_root(repo, directory)
    worktrees: dict[str, list[Any]] = {}
    for path in registered_worktrees(repo):
        if path.parent.parent == root:
            worktrees.setdefault(path.parent.name, []).append(path)
    if root.is_dir():  # folders git forgot about (a crash between mkdir and registration)
        for run_dir in root.iterdir():
            for attempt in (run_dir.iterdir() if run_dir.is_dir() else ()):
                if attempt not in worktrees.get(run_dir.name, []):
                    worktrees.setdefault(run_dir.name, []).append(attempt)
    branches: dict[str, list[str]] = {}
    for branch in flotilla_branches(repo):
        run_id = branch[len(BRANCH_PREFIX):].split("/", 1)[0]
        branches.setdefault(run_id, []).append(branch)
    for run_id in sorted(set(worktrees) | set(branches)):
        state = run_state(store, run_id)
        if state != "crashed":
            report.kept[run_id] = state
            continue
        report.crashed_runs.append(run_id)
        for path in worktrees.get(run_id, []):
            report.removed_worktrees.append(str(path))
            if not dry_run:
                remove_worktree(repo, path)
        for branch in branches.get(run_id, []):
            report.removed_branches.append(branch)
            if not dry_run:
                git(repo.root, "branch", "-D", branch, check=False)
        if not dry_run:
            _mark_crashed(store, run_id)
    if not dry_run:
        git(repo.root, "worktree", "prune")
    return report


def _mark_crashed(store: Any, run_id: str) -> None:
    reason = "crashed (its process died); leftovers removed by flotilla gc"
    store.finish_run(run_id, "failed", reason)
    for child in store.list_runs(parent_id=run_id, limit=1000):
        if child["status"] == "running":
            store.finish_run(child["id"], "failed", reason)
