"""An integration branch that takes branches one at a time, each kept only if the check stays green.

The merge queue of a fan-out: ``merge_one`` merges a branch into the integration worktree, runs the
check there, and keeps the merge only when it applied cleanly and the check passed; otherwise the
integration branch goes back to where it was and the reason is returned. Each call starts by
merging (a branch merged before a crash merges again as a no-op, a half-done merge is aborted and
redone), and a merge not kept puts the worktree back at ``before``, so it is safe to run again after a
crash at any point.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from ._git import git, identity_args, out
from .sandbox import Sandbox
from .worktree import Worktree


@dataclass
class Merged:
    """What one merge into the integration branch did."""

    merged: bool
    head: str
    """The integration branch's head afterwards (``before`` when the merge was not kept)."""
    reason: str = ""
    """Why it was not kept: the conflicting files, or the check's summary."""
    check: dict[str, Any] | None = None


async def merge_one(worktree: Worktree, branch: str, before: str, *, message: str, check: str | None = None,
                    timeout: float = 600.0, sandbox: Sandbox | None = None) -> Merged:
    """Merges ``branch`` into ``worktree`` (at ``before``); runs ``check`` on the result."""
    conflict = await asyncio.to_thread(_merge, worktree, branch, before, message)
    if conflict is not None:
        return Merged(False, before, conflict)
    if check is None:
        return Merged(True, worktree.head())
    done = await worktree.run(check, timeout=timeout, sandbox=sandbox)
    if done.passed:
        return Merged(True, worktree.head(), check=done.to_dict())
    await asyncio.to_thread(_reset, worktree, before)
    return Merged(False, before, f"the check failed after merging it ({done.summary})", check=done.to_dict())


def _merge(worktree: Worktree, branch: str, before: str, message: str) -> str | None:
    """None when ``branch`` is merged (again: a branch merged before a crash merges as a no-op); else
    the conflict, with the worktree back at ``before``. A merge a crash left half done is aborted and
    the merge tried once more, so only a real conflict is reported as one."""
    for _ in range(2):
        done = git(worktree.path, *_ident(str(worktree.path)), "merge", "--no-ff", "-q", "--no-verify", "-m",
                   message, branch, check=False)
        if done.returncode == 0:
            return None
        files = out(worktree.path, "diff", "--name-only", "--diff-filter=U").split()
        _reset(worktree, before)
    return "conflicts with the slices merged before it" + (f" in {', '.join(files)}" if files else
                                                         f": {(done.stderr or done.stdout).strip()[-200:]}")


@functools.lru_cache(maxsize=64)
def _ident(path: str) -> tuple[str, ...]:
    """The commit identity arguments, once per worktree (two git calls each time would double a merge's)."""
    return tuple(identity_args(path))


def _reset(worktree: Worktree, before: str) -> None:
    git(worktree.path, "merge", "--abort", check=False)
    git(worktree.path, "reset", "-q", "--hard", before)
    git(worktree.path, "clean", "-q", "-fd")


def changed_files(worktree: Worktree, base: str, head: str) -> list[str]:
    """The paths that differ between two commits."""
    return [p for p in out(worktree.path, "diff", "--name-only", base, head).splitlines() if p]
