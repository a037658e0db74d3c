"""``flotilla resume`` and ``flotilla worker``: durable runs after a crash, and workers on several machines.

``flotilla.durable`` costs about a second to import, so it is imported inside the commands only.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any, Optional

import typer
from ..patterns._worker import WorkerConfig
from ._console import make_console, setting

out = make_console()
err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
    app.command("worker")(worker)


def resume(
    run: str = typer.Argument(..., help="The crashed run to continue (`flotilla runs` shows it as resumable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    store_path: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Continue a crashed durable run (and its crashed attempts) from its last finished step."""
    from ..errors import NothingToResume, UserError
    from ..session import Session
    from ..store import store_location, why_not_resumable

    if not store_location(store_path).is_file():
        raise UserError(f"no run {run!r}: {store_location(store_path)} does not exist (nothing has run here yet)")

    session = Session(project=Path.cwd(), store=store_path)
    record = session.store.get_run(run)
    why = why_not_resumable(record)
    if why:  # finished, failed or stopped: nothing is done, and the exit code says so
        raise NothingToResume(why)
    err.print(f"resuming {record['kind']} {record['id']}", highlight=False)
    result = session.resume_sync(record["id"])
    record = session.store.get_run(record["id"])
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
    """Run queued attempts (`flotilla race --queue`) until stopped; adopt dead workers' queued attempts."""
    from ..patterns.race import ATTEMPTS_QUEUE
    from ..session import Session

    session = Session(project=Path.cwd(), worker_remote=remote)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            task = asyncio.ensure_future(session.work(concurrency=concurrency, dead_after=dead_after, stop=stop))
            await asyncio.sleep(0)
            while not task.done() and not session._started:
                await asyncio.sleep(0.05)
            if session._started:
                from .. import durable

                err.print(f"worker {durable.current().executor_id} listening on {ATTEMPTS_QUEUE!r}", highlight=False)
            await task
        finally:
            session.close()

    asyncio.run(go())


def durable_states(store_path: str, ids: list[str]) -> dict[str, str]:
    """The durable state of each run that is a workflow (running, resumable, done, …), by id; empty when
    the project has no durable runs. Never recovers anything (a listing must not start work)."""
    from ..patterns._worker import has_workflows

    if not ids or not has_workflows(store_path):
        return {}
    from .. import durable
    from ..session import load_tasks

    load_tasks()
    durable.launch(None if _env_url() else f"sqlite:///{Path(store_path).resolve()}", recover=False)
    try:
        return {w.id: w.state for w in durable.workflows(ids=ids, limit=None)}
    finally:
        durable.shutdown()


def _env_url() -> Any:
    import os

    return os.environ.get("FLOTILLA_DATABASE_URL")
