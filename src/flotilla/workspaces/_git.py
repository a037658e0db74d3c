"""Running git, and telling whether a repository is one flotilla can race from."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import RepositoryError, RunError


class GitError(RunError):
    """A git command failed where it should not have; the message carries git's own words."""


def git(cwd: Path | str, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``git ARGS`` in ``cwd``; raises ``GitError`` with git's stderr when ``check`` and it fails."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, input=input)
    except FileNotFoundError as exc:
        raise RepositoryError("git is not installed or not on PATH; install git to race") from exc
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def out(cwd: Path | str, *args: str) -> str:
    """The stripped standard output of a git command that must succeed."""
    return git(cwd, *args).stdout.strip()


def identity_args(cwd: Path | str) -> list[str]:
    """``-c user.name=… -c user.email=…`` when the repository has no identity, so commits never fail on it."""
    args: list[str] = []
    if git(cwd, "config", "user.name", check=False).returncode != 0:
        args += ["-c", "user.name=flotilla"]
    if git(cwd, "config", "user.email", check=False).returncode != 0:
        args += ["-c", "user.email=flotilla@localhost"]
    return args


@dataclass(frozen=True)
class Repo:
    """The main worktree of a repository and where a race starts from."""

    root: Path
    """The top level of the main worktree."""
    git_dir: Path
    """The common ``.git`` directory (shared by every worktree)."""
    branch: str | None
    """The branch checked out in the main worktree; None when HEAD is detached."""


def open_repo(path: Path | str) -> Repo:
    """Finds the repository around ``path``; refuses clearly when there is none or it is bare."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise RepositoryError(f"{path} is not a directory; run flotilla inside a git repository")
    probe = git(path, "rev-parse", "--is-bare-repository", "--git-common-dir", check=False)
    if probe.returncode != 0:
        raise RepositoryError(
            f"{path} is not a git repository; run `git init` and commit your project first, or cd into one")
    bare, common = probe.stdout.split()
    if bare == "true":
        raise RepositoryError(
            f"{path} is a bare repository (no working tree); clone it (`git clone {path} work`) and race there")
    top = Path(out(path, "rev-parse", "--show-toplevel")).resolve()
    common_dir = (path / common).resolve()
    if git(top, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode != 0:
        raise RepositoryError(f"{top} has no commits yet; commit your project first (`git commit -m init`)")
    head = git(top, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return Repo(root=top, git_dir=common_dir, branch=head.stdout.strip() if head.returncode == 0 else None)


def require_branch(repo: Repo) -> str:
    """The checked-out branch, or a refusal naming the fix when HEAD is detached."""
    if repo.branch is None:
        raise RepositoryError(
            f"{repo.root}: HEAD is detached, so there is no branch to merge the winner into; "
            "check out a branch first (`git switch main`, or `git switch -c work`)")
    return repo.branch


def dirty_files(root: Path) -> list[str]:
    """Tracked files with uncommitted changes (untracked files do not stop a race: it starts from a commit)."""
    lines = git(root, "status", "--porcelain", "--untracked-files=no").stdout.splitlines()
    return [line[3:] for line in lines if line.strip()]


def require_clean(repo: Repo) -> None:
    """Refuses a repository with uncommitted changes, naming them and the two ways out."""
    dirty = dirty_files(repo.root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise RepositoryError(
            f"{repo.root} has uncommitted changes ({shown}); commit or stash them first, "
            "or pass --allow-dirty to race from HEAD without them")


def resolve_commit(repo: Repo, ref: str) -> str:
    """The full commit id ``ref`` names, or a refusal naming the ref."""
    proc = git(repo.root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    if proc.returncode != 0:
        raise RepositoryError(f"--base {ref!r} does not name a commit in {repo.root}; try a branch, tag or commit id")
    return proc.stdout.strip()


def ensure_excluded(repo: Repo, *patterns: str) -> None:
    """Adds patterns to ``.git/info/exclude`` (never the user's ``.gitignore``), once each."""
    exclude = repo.git_dir / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    have = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [p for p in patterns if p not in have]
    if missing:
        text = "\n".join(have)
        if text and not text.endswith("\n"):
            text += "\n"
        exclude.write_text(text + "# flotilla's own files\n" * (not any("flotilla" in h for h in have))
                           + "\n".join(missing) + "\n")


def exclude_flotilla(repo: Repo, worktree_dir: str) -> str:
    """Keeps flotilla's own files out of git: the worktrees folder (when inside the repository) and the
    run store; returns ``worktree_dir`` as the patterns record it."""
    wt_dir = worktree_dir.strip("/")
    ensure_excluded(repo, *([] if Path(wt_dir).is_absolute() else [f"/{wt_dir}/"]), "/.flotilla/*.db",
                    "/.flotilla/*.db-*")
    return wt_dir
