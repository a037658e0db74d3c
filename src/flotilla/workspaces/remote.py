"""Sharing a repository between machines through a git remote: the orchestrator publishes the race's
base, each worker keeps its own clone, and attempt branches travel back the same way.

Every function here is safe to repeat (fetches and forced pushes of flotilla's own refs), because each
runs inside a durable step that may run twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from ..errors import RepositoryError
from ._git import Repo, git, open_repo
from .worktree import BRANCH_PREFIX

_lock = threading.Lock()


def default_cache_dir() -> Path:
    """Where a worker keeps its clones: ``$FLOTILLA_CACHE_DIR`` or ``~/.cache/flotilla/repos``."""
    env = os.environ.get("FLOTILLA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "flotilla" / "repos"


def base_ref(race_id: str) -> str:
    return f"refs/heads/{BRANCH_PREFIX}{race_id}/base"


def publish_base(repo: Repo, remote: str, race_id: str, base_commit: str) -> None:
    """Pushes the race's base commit to the remote (as ``flotilla/<race>/base``) so workers can fetch it
    even when it was never pushed."""
    git(repo.root, "push", "-q", "--force", remote, f"{base_commit}:{base_ref(race_id)}")


def worker_clone(remote: str, race_id: str, cache_dir: Path | None = None) -> Repo:
    """This machine's clone of ``remote`` (made on first use, fetched after), with the race's base in it."""
    folder = (cache_dir or default_cache_dir()) / hashlib.sha256(remote.encode()).hexdigest()[:16]
    with _lock:
        if not (folder / ".git").is_dir():
            folder.parent.mkdir(parents=True, exist_ok=True)
            git(folder.parent, "clone", "-q", remote, folder.name)
        git(folder, "fetch", "-q", "--force", remote, f"+{base_ref(race_id)}:{base_ref(race_id)}")
        # the clone's own checkout follows the race's base: the remote's HEAD may name no branch at all
        git(folder, "checkout", "-q", "--force", "--detach", base_ref(race_id))
    return open_repo(folder)


def push_branch(repo: Repo, remote: str, branch: str) -> None:
    """Pushes an attempt's branch to the remote (forced: it is the attempt's own)."""
    git(repo.root, "push", "-q", "--force", remote, f"refs/heads/{branch}:refs/heads/{branch}")


def fetch_attempts(repo: Repo, remote: str, race_id: str) -> None:
    """Fetches every attempt branch of a race from the remote into the orchestrator's repository."""
    prefix = f"refs/heads/{BRANCH_PREFIX}{race_id}/"
    proc = git(repo.root, "fetch", "-q", "--force", remote, f"+{prefix}*:{prefix}*", check=False)
    if proc.returncode != 0 and "couldn't find remote ref" not in proc.stderr:
        raise RepositoryError(f"cannot fetch race {race_id}'s branches from {remote}: {proc.stderr.strip()}. "
                              "Fix: check [worker] remote in flotilla.toml and that this machine can reach it")
    git(repo.root, "branch", "-D", f"{BRANCH_PREFIX}{race_id}/base", check=False)
