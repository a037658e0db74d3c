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


def kept_diff(repo: Repo, base: str, *refs: str | None) -> str | None:
    """The diff against ``base`` of the first of ``refs`` git still has (a commit outlives its branch
    until git gc), or None when none is left."""
    for ref in refs:
        if ref and git(repo.root, "cat-file", "-e", f"{ref}^{{commit}}", check=False).returncode == 0:
            return branch_diff(repo, base, ref)
    return None


def merge_branch(repo: Repo, branch: str, *, base_branch: str, base_commit: str, squash: bool = False,
                 message: str | None = None) -> str:
    """Merges ``branch`` into ``base_branch`` and returns the merge commit (the base branch's new head).

    Safe to repeat after a crash at any point: when the base branch already
    contains the branch (merged by an earlier call), its existing merge commit
    is returned; a merge of this branch left half done (``MERGE_HEAD`` is the
    branch's head, or a squash staged) is concluded when it has no conflicts,
    else aborted and done again. Refuses, touching nothing, when the main
    worktree is on another branch, has uncommitted changes, is in the middle
    of a merge of something else, or when the base branch moved since the
    race began and the two no longer merge cleanly.
    """
    current = require_branch(Repo(repo.root, repo.git_dir, _current_branch(repo)))  # now, not at race start
    if current != base_branch:
        raise RepositoryError(f"{repo.root} has {current!r} checked out but the race started from "
                              f"{base_branch!r}; `git switch {base_branch}` and merge again")
    if git(repo.root, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).returncode != 0:
        raise RepositoryError(f"branch {branch!r} no longer exists (already merged, or removed by gc)")
    tip = out(repo.root, "rev-parse", f"refs/heads/{branch}")
    message = message or f"flotilla: merge {branch}"
    ident = identity_args(repo.root)
    with _git_lock:
        concluded = _conclude_half_done(repo, branch, tip, squash=squash, message=message, ident=ident)
        if concluded is not None:
            return concluded
        if dirty_files(repo.root):
            raise RepositoryError(f"{repo.root} has uncommitted changes; commit or stash them, then merge again")
        head = out(repo.root, "rev-parse", "HEAD")
        if _is_ancestor(repo, tip, head):
            return _merge_commit_of(repo, tip, head)  # merged already (by us, before a crash)
        tree = _merged_tree(repo, head, branch, base_branch=base_branch, moved=head != base_commit)
        if squash and tree == out(repo.root, "rev-parse", "HEAD^{tree}"):
            return head  # its changes are in the base already: squash-merged before a crash
        if squash:
            git(repo.root, "merge", "--squash", "-q", branch)
            git(repo.root, *ident, "commit", "-q", "--no-verify", "-m", message)
        else:
            git(repo.root, *ident, "merge", "--no-ff", "-q", "--no-verify", "-m", message, branch)
    return out(repo.root, "rev-parse", "HEAD")


def _conclude_half_done(repo: Repo, branch: str, tip: str, *, squash: bool, message: str,
                        ident: list[str]) -> str | None:
    """Finishes or undoes a merge of ``branch`` a crash left half done; the new head, or None to merge afresh."""
    merging = git(repo.root, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False)
    if merging.returncode == 0:
        if merging.stdout.strip() != tip:
            raise RepositoryError(
                f"{repo.root} is in the middle of another merge (of {merging.stdout.strip()[:12]}, not {branch}); "
                "conclude it (`git commit`) or abort it (`git merge --abort`), then merge again")
        if not out(repo.root, "ls-files", "--unmerged"):
            git(repo.root, *ident, "commit", "-q", "--no-verify", "-m", message)
            return out(repo.root, "rev-parse", "HEAD")
        git(repo.root, "merge", "--abort")
        return None
    squash_msg = repo.root / out(repo.root, "rev-parse", "--git-path", "SQUASH_MSG")
    if squash and squash_msg.is_file() and not out(repo.root, "ls-files", "--unmerged"):
        staged = out(repo.root, "write-tree")
        head = out(repo.root, "rev-parse", "HEAD")
        unstaged = git(repo.root, "diff", "--quiet", check=False).returncode != 0
        probe = git(repo.root, "merge-tree", "--write-tree", head, branch, check=False)
        if not unstaged and probe.returncode == 0 and probe.stdout.split()[0] == staged:
            git(repo.root, *ident, "commit", "-q", "--no-verify", "-m", message)
            return out(repo.root, "rev-parse", "HEAD")
    return None


def _merged_tree(repo: Repo, head: str, branch: str, *, base_branch: str, moved: bool) -> str:
    """The tree merging ``branch`` into ``head`` gives; refuses, naming the files, when it conflicts."""
    probe = git(repo.root, "merge-tree", "--write-tree", "--name-only", head, branch, check=False)
    if probe.returncode != 0:
        # output: the tree id, the conflicted paths, a blank line, then git's messages
        conflicts = probe.stdout.split("\n\n", 1)[0].splitlines()[1:]
        why = f" ({base_branch} has moved since the race started)" if moved else ""
        raise RepositoryError(
            f"{branch} does not merge cleanly into {base_branch}{why}; conflicting files: "
            f"{', '.join(sorted(set(conflicts))) or 'see git merge-tree'}. Nothing was merged. "
            f"Merge it by hand (`git merge {branch}`) or rebase it onto {base_branch}")
    return probe.stdout.split()[0]


def _is_ancestor(repo: Repo, commit: str, of: str) -> bool:
    return git(repo.root, "merge-base", "--is-ancestor", commit, of, check=False).returncode == 0


def _merge_commit_of(repo: Repo, tip: str, head: str) -> str:
    """The commit of the base branch that merged ``tip`` in; ``head`` when none did (nothing to merge)."""
    for line in out(repo.root, "rev-list", "--merges", "--ancestry-path", "--reverse", "--parents",
                    f"{tip}..{head}").splitlines():
        commit, *parents = line.split()
        if tip in parents[1:]:
            return commit
    return head


def _current_branch(repo: Repo) -> str | None:
    proc = git(repo.root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None
