"""``flotilla resume`` and ``flotilla worker``: durable runs after a crash, and workers on several machines.

``flotilla.durable`` costs about a second to import, so it is imported inside the commands only.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any, Optional

import typer
from ._console import make_console, setting
from pydantic import BaseModel, ConfigDict

out = make_console()
err = make_console(stderr=True)


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
    """Seconds of heartbeat silence after which a worker is dead and its runs are adopted."""


def worker_config(settings: Any) -> WorkerConfig:
    return settings.section("worker", WorkerConfig)


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
    app.command("worker")(worker)


def load_workflows() -> Any:
    """Imports the modules that define flotilla's workflows (they must be known before launch)."""
    from .. import durable
    from ..agents import durable_run  # noqa: F401 - registers flotilla.agent
    from ..patterns import durable_race  # noqa: F401 - registers flotilla.race and flotilla.attempt

    return durable


def launch_recovering(durable: Any, url: str | None) -> list[str]:
    """Launches durable execution here and picks up this machine's crashed runs; returns their ids."""
    durable.launch(url, recover=False)
    recovered = durable.recover()
    if recovered:
        err.print(f"picked up {len(recovered)} crashed run(s) of this machine: {', '.join(recovered)}",
                  highlight=False)
    return recovered


async def finish_recovered(durable: Any, ids: list[str], *, besides: str = "") -> None:
    """Waits for the crashed runs this command picked up, so that exiting does not drop them mid-step
    (the step in flight would run once more at the next launch). Ctrl-C leaves them for later."""
    ids = [i for i in ids if i != besides]
    still = [w.id for w in durable.workflows(ids=ids, limit=None) if w.state == "running"] if ids else []
    if not still:
        return
    err.print(f"waiting for {len(still)} recovered run(s) to finish; Ctrl-C leaves them for `flotilla resume`",
              highlight=False)
    try:
        for run_id in still:
            try:
                await durable.Handle(run_id).result()
            except Exception:  # noqa: BLE001 - each run records its own outcome
                pass
    except asyncio.CancelledError:  # Ctrl-C: this command's own result still stands
        err.print("left the recovered runs for later", highlight=False)


def durable_url(store_path: str) -> str | None:
    """The durable database for a project: ``FLOTILLA_DATABASE_URL`` when set (``launch`` reads it),
    else the run store's own SQLite file, so that runs and their steps live together."""
    return None if os.environ.get("FLOTILLA_DATABASE_URL") else f"sqlite:///{Path(store_path).resolve()}"


def resume(
    run: str = typer.Argument(..., help="The run to continue (a race or an attempt id; `flotilla runs`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    store_path: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Continue a crashed durable run from its last finished step (a finished or stopped run is over)."""
    from ..errors import UserError
    from ..store import open_store, store_location, why_not_resumable

    if not store_location(store_path).is_file():
        raise UserError(f"no run {run!r}: {store_location(store_path)} does not exist (nothing has run here yet)")
    store = open_store(store_path)
    record = store.get_run(run)
    why = why_not_resumable(record)
    if why:  # a finished or stopped run: say so, and exit non-zero (nothing was done)
        err.print(why, highlight=False)
        raise SystemExit(1)
    durable = load_workflows()

    async def go() -> Any:
        recovered = launch_recovering(durable, durable_url(store.path))  # this run among them, if it crashed
        try:
            if record["id"] in recovered:
                result = await durable.Handle(record["id"]).result()
            else:
                result = await durable.resume(record["id"]).result()
            await finish_recovered(durable, recovered, besides=record["id"])
            return result
        finally:
            durable.shutdown()

    err.print(f"resuming {record['kind']} {record['id']}", highlight=False)
    result = asyncio.run(go())
    record = store.get_run(record["id"])
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    elif record["kind"] == "race" and record["result"]:
        from ..patterns._race_report import outcome_view

        out.print(outcome_view(record["result"]))
    else:
        out.print(f"run {record['id']}: {record['status']} {record['reason'] or ''}", highlight=False)
    outcome = record["result"] or {}
    if record["kind"] == "race" and (not outcome.get("winner") or outcome.get("merge_error")):
        raise SystemExit(1)  # as `flotilla race` does: no winner, or a winner left unmerged


def worker(
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", "-c", min=1,
        help=f"Attempts this worker runs at once (default: {setting('worker', 'concurrency', WorkerConfig)})."),
    remote: Optional[str] = typer.Option(
        None, "--remote", help=f"The shared git remote (default: {setting('worker', 'remote', WorkerConfig)})."),
    dead_after: Optional[float] = typer.Option(
        None, "--dead-after", min=1.0, help="Seconds of silence before a worker counts as dead "
                                            f"(default: {setting('worker', 'dead_after_s', WorkerConfig)})."),
) -> None:
    """Run queued attempts (`flotilla race --queue`) until stopped; adopt the runs of dead workers."""
    from ..config import load_settings

    settings = load_settings()
    config = worker_config(settings)
    if remote:
        os.environ["FLOTILLA_WORKER_REMOTE"] = remote
    durable = load_workflows()
    from ..patterns.durable_race import ATTEMPTS_QUEUE

    async def go() -> None:
        runtime = durable.launch(listen=[ATTEMPTS_QUEUE], adopt=True,
                                 dead_after=dead_after or config.dead_after_s)
        durable.register_queue(ATTEMPTS_QUEUE, concurrency=config.global_concurrency,
                               worker_concurrency=concurrency or config.concurrency, polling_interval=0.2)
        err.print(f"worker {runtime.executor_id} listening on {ATTEMPTS_QUEUE!r}", highlight=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            durable.shutdown()

    asyncio.run(go())


def durable_states(store_path: str, ids: list[str]) -> dict[str, str]:
    """The durable state of each run that is a workflow (running, resumable, done, …), by id; empty when
    the project has no durable runs. Never recovers anything (a listing must not start work)."""
    if not ids or not _has_workflows(store_path):
        return {}
    durable = load_workflows()
    durable.launch(durable_url(store_path), recover=False)
    try:
        return {w.id: w.state for w in durable.workflows(ids=ids, limit=None)}
    finally:
        durable.shutdown()


def give_up(store: Any, run_ids: list[str]) -> None:
    """Cancels the durable workflows of runs ``flotilla gc`` cleaned up (and their children), so that no
    later launch resumes them."""
    if not run_ids or not _has_workflows(store.path):
        return
    durable = load_workflows()

    async def go() -> None:
        durable.launch(durable_url(store.path), recover=False)
        try:
            known = {w.id for w in durable.workflows(ids=run_ids, limit=None)}
            for run_id in run_ids:
                if run_id in known:
                    await durable.cancel(run_id)
        finally:
            durable.shutdown()

    asyncio.run(go())


def _has_workflows(store_path: str) -> bool:
    """Whether the durable database exists and holds workflows (without importing DBOS)."""
    if os.environ.get("FLOTILLA_DATABASE_URL"):
        return True
    import sqlite3

    path = Path(store_path)
    if not path.is_file():
        return False
    with sqlite3.connect(path) as db:
        return bool(db.execute("SELECT 1 FROM sqlite_master WHERE name = 'workflow_status'").fetchall())
