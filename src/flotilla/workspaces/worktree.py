"""One git worktree per attempt, on its own branch, created and removed safely.

Creation is idempotent: it looks at what already exists (the branch, the
registered worktree, the folder) and finishes the job, so a step that runs
twice after a crash does no harm.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RepositoryError
from ._git import GitError, Repo, git, identity_args, out
from .checks import CheckResult, run_check
from .sandbox import Sandbox

DEFAULT_DIR = ".flotilla/worktrees"
BRANCH_PREFIX = "flotilla/"
INCLUDE_FILE = ".worktreeinclude"

# git serializes writes to the shared .git directory with lock files and fails
# instead of waiting; creating and removing worktrees one at a time per process avoids that.
_git_lock = threading.Lock()


def branch_name(run_id: str, attempt: str) -> str:
    return f"{BRANCH_PREFIX}{run_id}/{attempt}"


@dataclass
class Worktree:
    """A ``Workspace``: a folder on branch ``flotilla/<run>/<attempt>`` that started at ``base``."""

    repo: Repo
    path: Path
    branch: str
    base: str
    """The commit the attempt started from; diffs are taken against it."""
    extra_env: dict[str, str] = field(default_factory=dict)

    def diff(self) -> str:
        """Everything the attempt changed since ``base``: its commits and anything not yet committed."""
        git(self.path, "add", "-A", "--intent-to-add")
        return git(self.path, "diff", self.base, "--").stdout

    def commit(self, message: str) -> str | None:
        """Commits every change (new files too); the new commit id, or None when nothing changed."""
        git(self.path, "add", "-A")
        if git(self.path, "diff", "--cached", "--quiet", check=False).returncode == 0:
            return None
        git(self.path, *identity_args(self.path), "commit", "-q", "--no-verify", "-m", message)
        return out(self.path, "rev-parse", "HEAD")

    def head(self) -> str:
        return out(self.path, "rev-parse", "HEAD")

    async def run(self, command: str, timeout: float = 600.0, sandbox: Sandbox | None = None) -> CheckResult:
        """Runs a check command here, confined by ``sandbox`` if given; see ``checks.run_check``."""
        return await run_check(command, self.path, timeout=timeout, env=self.extra_env, sandbox=sandbox)


def create_worktree(repo: Repo, run_id: str, attempt: str, base: str, *,
                    directory: str = DEFAULT_DIR, include: bool = True) -> Worktree:
    """Creates (or finishes creating) the worktree for one attempt and returns it.

    ``base`` must be a commit id. Files listed in ``.worktreeinclude`` that git
    ignores (``.env``, say) are copied in from the main worktree.
    """
    path = worktree_root(repo, directory) / run_id / attempt
    branch = branch_name(run_id, attempt)
    with _git_lock:
        registered = registered_worktrees(repo)
        if path in registered and registered[path] != branch:
            raise RepositoryError(f"{path} is a worktree on {registered[path]!r}, not {branch!r}; "
                                  "remove it with `git worktree remove --force` or run `flotilla gc`")
        if path in registered and not path.exists():  # registered (and locked), folder deleted by hand
            git(repo.root, "worktree", "remove", "--force", "--force", str(path), check=False)
            git(repo.root, "worktree", "prune")
            del registered[path]
        if path not in registered:
            if path.exists():  # a half-made folder from a crash: git refuses non-empty targets
                shutil.rmtree(path)
            has_branch = git(repo.root, "rev-parse", "--verify", "-q", f"refs/heads/{branch}",
                             check=False).returncode == 0
            args = ["worktree", "add", "-q", "--lock", "--reason", f"flotilla run {run_id} (pid {os.getpid()})"]
            args += [str(path), branch] if has_branch else ["-b", branch, str(path), base]
            git(repo.root, *args)
    if include:
        copy_included(repo.root, path)
    return Worktree(repo=repo, path=path, branch=branch, base=base)


def remove_worktree(repo: Repo, path: Path, *, branch: str | None = None) -> None:
    """Removes a worktree (locked or dirty) and optionally its branch; missing pieces are fine."""
    with _git_lock:
        if path in registered_worktrees(repo):
            git(repo.root, "worktree", "remove", "--force", "--force", str(path), check=False)
        if path.exists():  # never registered, or git could not remove it
            shutil.rmtree(path, ignore_errors=True)
            git(repo.root, "worktree", "prune")
        if branch:
            git(repo.root, "branch", "-D", branch, check=False)
    # the run's folder goes too once its last attempt has
    parent = path.parent
    if parent.exists() and not any(parent.iterdir()):
        parent.rmdir()


def remove_run_worktrees(repo: Repo, directory: str, run_id: str, *, branches: bool = False) -> None:
    """Removes every worktree a run made (``<directory>/<run_id>/*``); with ``branches``, their branches
    (``flotilla/<run_id>/<name>``) too."""
    mine = worktree_root(repo, directory) / run_id
    if mine.is_dir():
        for path in mine.iterdir():
            remove_worktree(repo, path, branch=f"flotilla/{run_id}/{path.name}" if branches else None)


def delete_branch(repo: Repo, branch: str) -> None:
    with _git_lock:
        git(repo.root, "branch", "-D", branch, check=False)


def worktree_root(repo: Repo, directory: str = DEFAULT_DIR) -> Path:
    root = Path(directory)
    return (root if root.is_absolute() else repo.root / root).resolve()


def registered_worktrees(repo: Repo) -> dict[Path, str | None]:
    """Every worktree git knows about: path → branch (None when detached)."""
    result: dict[Path, str | None] = {}
    path: Path | None = None
    for line in out(repo.root, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = Path(line[9:]).resolve()
            result[path] = None
        elif line.startswith("branch ") and path is not None:
            result[path] = line[7:].removeprefix("refs/heads/")
    return result


def flotilla_branches(repo: Repo) -> list[str]:
    """Every ``flotilla/…`` branch in the repository."""
    text = out(repo.root, "for-each-ref", "--format=%(refname:short)", f"refs/heads/{BRANCH_PREFIX}")
    return [b for b in text.splitlines() if b]


def copy_included(source: Path, target: Path) -> list[str]:
    """Copies the ignored files ``.worktreeinclude`` names (gitignore-style globs) into ``target``."""
    spec = source / INCLUDE_FILE
    if not spec.is_file():
        return []
    patterns = [p.strip() for p in spec.read_text().splitlines() if p.strip() and not p.startswith("#")]
    if not patterns:
        return []
    ignored = git(source, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory",
                  check=False).stdout.splitlines()
    copied = []
    for rel in ignored:
        rel = rel.rstrip("/")
        if rel.startswith(".flotilla") or not any(_matches(rel, p) for p in patterns):
            continue
        src, dst = source / rel, target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
        elif src.exists():
            shutil.copy2(src, dst)
        copied.append(rel)
    return copied


def _matches(rel: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    return fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(Path(rel).name, pattern)


async def run_setup(worktree: Worktree, command: str, timeout: float = 600.0,
                    sandbox: Sandbox | None = None) -> None:
    """Runs the project's setup command in a fresh worktree; a failure stops that attempt only."""
    result = await worktree.run(command, timeout=timeout, sandbox=sandbox)
    if not result.passed:
        raise GitError(f"setup command {command!r} failed in {worktree.path} "
                       f"(exit {result.exit_code}): {result.tail[-500:]}")
