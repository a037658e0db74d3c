"""Workspaces: one git worktree per attempt, the checks run in them, merging and clean-up."""

from ._git import GitError, Repo, dirty_files, ensure_excluded, exclude_flotilla, open_repo, require_branch, require_clean, \
    resolve_commit
from .checks import CheckResult, parse_pytest, run_check
from .gc import GcReport, collect_garbage
from .merge import DiffStat, branch_diff, diff_stat, kept_diff, merge_branch
from .worktree import DEFAULT_DIR, Worktree, branch_name, copy_included, create_worktree, delete_branch, \
    registered_worktrees, remove_worktree, run_setup

__all__ = [
    "CheckResult", "DEFAULT_DIR", "DiffStat", "GcReport", "GitError", "Repo", "Worktree", "branch_diff", "kept_diff",
    "branch_name", "collect_garbage", "copy_included", "create_worktree", "delete_branch", "diff_stat",
    "dirty_files", "ensure_excluded", "exclude_flotilla", "merge_branch", "open_repo", "parse_pytest", "registered_worktrees",
    "remove_worktree", "require_branch", "require_clean", "resolve_commit", "run_check", "run_setup",
]
