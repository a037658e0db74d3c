"""Workers on several machines: the ``[worker]`` configuration, the attempts queue, and giving up on
crashed durable runs (``flotilla gc``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

ATTEMPTS_QUEUE = "attempts"
"""The queue ``race --queue`` puts attempts on and ``flotilla worker`` takes them from."""


class WorkerConfig(BaseModel):
    """The ``[worker]`` section of flotilla.toml."""

    model_config = ConfigDict(extra="forbid")

    remote: str | None = None
    """The git remote (URL) every machine fetches the repository from and pushes attempt branches to."""
    concurrency: int = 2
    """Attempts one worker runs at once."""
    global_concurrency: int | None = None
    """Attempts running at once over every worker; None for no limit."""
    dead_after_s: float = 15.0
    """Seconds of heartbeat silence after which a worker is dead and its queued attempts are adopted."""


def worker_config(settings: Any) -> WorkerConfig:
    return settings.section("worker", WorkerConfig)


def has_workflows(store_path: str) -> bool:
    """Whether the durable database exists and holds workflows (without importing DBOS)."""
    if os.environ.get("FLOTILLA_DATABASE_URL"):
        return True
    path = Path(store_path)
    if store_path == ":memory:" or not path.is_file():
        return False
    with sqlite3.connect(path) as db:
        return bool(db.execute("SELECT 1 FROM sqlite_master WHERE name = 'workflow_status'").fetchall())


def give_up(session: Any, run_ids: list[str]) -> None:
    """Cancels the durable workflows of runs ``flotilla gc`` cleaned up (and their children), so that
    no later ``flotilla resume`` continues them."""
    if not run_ids or not has_workflows(session.store.path):
        return

    async def go() -> None:
        from .. import durable

        known = {w.id for w in durable.workflows(ids=run_ids, limit=None)}
        for run_id in run_ids:
            if run_id in known:
                await durable.cancel(run_id)

    session._sync(go)
