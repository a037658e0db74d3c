"""Where runs live: one SQLite file by default."""

from __future__ import annotations

from pathlib import Path

from .sqlite import SQLiteStore, new_id

__all__ = ["SQLiteStore", "new_id", "default_store_path", "open_store", "store_location", "why_not_resumable"]


def default_store_path(root: Path | None = None) -> Path:
    """``.flotilla/flotilla.db`` under the project root (the git top level, else the current folder)."""
    import subprocess

    root = root or Path.cwd()
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        root = Path(top)
    except (subprocess.CalledProcessError, FileNotFoundError):
        pass
    return root / ".flotilla" / "flotilla.db"


def open_store(location: str | Path | None = None) -> SQLiteStore:
    """Opens the store at a path (``FLOTILLA_STORE`` or the project default when None)."""
    import os

    return SQLiteStore(store_location(location))


def store_location(location: str | Path | None = None, root: Path | None = None) -> Path:
    """Where the store is (or would be): ``location``, else ``FLOTILLA_STORE``, else the project default.
    Commands that only read check that it exists, so that looking creates nothing."""
    import os

    return Path(location or os.environ.get("FLOTILLA_STORE") or default_store_path(root))


def why_not_resumable(run: dict[str, object]) -> str | None:
    """Why ``flotilla resume`` has nothing to do for a run, or None when it may have (the store still
    says running: the process that ran it died, or it is running elsewhere)."""
    status, reason, run_id = run["status"], run.get("reason") or "", run["id"]
    said = f" ({reason})" if reason else ""
    if status == "running":
        return None
    if status == "cancelled":
        return f"run {run_id} was stopped{said}; a stopped run is over: start it again"
    if status == "failed" and "crashed" in str(reason):
        return f"run {run_id} crashed and was given up{said}; start it again"
    return f"run {run_id} is finished: {status}{said}; there is nothing to resume (`flotilla show {run_id}`)"
