"""Where runs live: one SQLite file by default."""

from __future__ import annotations

from pathlib import Path

from .sqlite import SQLiteStore, new_id

__all__ = ["SQLiteStore", "new_id", "default_store_path", "open_store"]


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

    location = location or os.environ.get("FLOTILLA_STORE") or default_store_path()
    return SQLiteStore(location)
