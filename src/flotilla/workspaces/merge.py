"""Merging an attempt's branch into the base branch, checked out in the main worktree."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RepositoryError
from ._git import Repo, dirty_files, git, identity_args, out, require_branch
from .worktree import _git_lock


@dataclass
class DiffStat:
    added: int
    removed: int
    files: int

    @property
    def lines(self) -> int:
        return self.added + self.removed


def diff_stat(repo: Repo, base: str, ref: str) -> DiffStat:
    """Lines added and removed, and files touched, from ``base`` to ``ref`` (binary files count as a file)."""
    added = removed = files = 0
    for line in out(repo.root, "diff", "--numstat", base, ref).splitlines():
        a, r, _ = line.split("\t", 2)
        files += 1
        added += int(a) if a.isdigit() else 0
        removed += int(r) if r.isdigit() else 0
    return DiffStat(added, removed, files)


def branch_diff(repo: Repo, base: str, ref: str) -> str:
    return git(repo.root, "diff", base, ref).stdout


def merge_branch(repo: Repo, branch: str, *, base_branch: str, base_commit: str, squash: bool = False,
                 message: str | None = None) -> str:
    """Merges ``branch`` into ``base_branch`` and returns the new commit id of the base branch.

    Refuses, touching nothing, when the main worktree is on another branch, has
    uncommitted changes, or when the base branch moved since the race began and
    the two no longer merge cleanly.
    """
    current = require_branch(Repo(repo.root, repo.git_dir, _current_branch(repo)))  # now, not at race start
    if current != base_branch:
        raise RepositoryError(f"{repo.root} has {current!r} checked out but the race started from "
                              f"{base_branch!r}; `git switch {base_branch}` and merge again")
    if dirty_files(repo.root):
        raise RepositoryError(f"{repo.root} has uncommitted changes; commit or stash them, then merge again")
    if git(repo.root, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).returncode != 0:
        raise RepositoryError(f"branch {branch!r} no longer exists (already merged, or removed by gc)")
    head = out(repo.root, "rev-parse", "HEAD")
    with _git_lock:
        probe = git(repo.root, "merge-tree", "--write-tree", "--name-only", head, branch, check=False)
        if probe.returncode != 0:
            # output: the tree id, the conflicted paths, a blank line, then git's messages
            conflicts = probe.stdout.split("\n\n", 1)[0].splitlines()[1:]
            moved = "" if head == base_commit else f" ({base_branch} has moved since the race started)"
            raise RepositoryError(
                f"{branch} does not merge cleanly into {base_branch}{moved}; conflicting files: "
                f"{', '.join(sorted(set(conflicts))) or 'see git merge-tree'}. Nothing was merged. "
                f"Merge it by hand (`git merge {branch}`) or rebase it onto {base_branch}")
        message = message or f"flotilla: merge {branch}"
        ident = identity_args(repo.root)
        if squash:
            git(repo.root, "merge", "--squash", "-q", branch)
            git(repo.root, *ident, "commit", "-q", "--no-verify", "-m", message)
        else:
            git(repo.root, *ident, "merge", "--no-ff", "-q", "--no-verify", "-m", message, branch)
    return out(repo.root, "rev-parse", "HEAD")


def _current_branch(repo: Repo) -> str | None:
    proc = git(repo.root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None
