"""Launching DBOS for this process: where its database is, who this executor is, recovery.

DBOS is one instance per process. ``launch`` configures and starts it (WAL on
SQLite, our JSON serializer, flotilla's own ``application_version``, an
executor id unique to this process) and starts the heartbeat; ``shutdown``
stops both. Workflows must be defined (their modules imported) before
``launch``, because launching adopts pending workflows of dead executors and
DBOS finds a workflow's code by its registered name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig
from dbos import error as dbos_error
from dbos._dbos import _get_dbos_instance

from ..errors import ConfigError, UserError
from ._heartbeat import Heartbeat
from ._serializer import JsonSerializer

T = TypeVar("T")

APP_VERSION = "flotilla-1"
"""The application version written on every workflow. DBOS's default is a hash of the
workflow source, so any upgrade would orphan pending runs; ours changes only when a
release changes the order or meaning of a workflow's steps (say so in the release notes)."""

APP_NAME = "flotilla"
DATABASE_ENV = "FLOTILLA_DATABASE_URL"


@dataclass
class Runtime:
    """The launched state of this process."""

    url: str
    executor_id: str
    heartbeat: Heartbeat
    engine: sa.Engine
    local_queue: str = ""
    """This process's own queue: what it adopts goes there, so that no other process (a worker
    listening on DBOS's internal queue, which every process does) runs it instead."""
    local_queue_made: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"


_runtime: Runtime | None = None


def database_url(root: Path | None = None, environ: dict[str, str] | None = None) -> str:
    """``FLOTILLA_DATABASE_URL`` when set, else ``sqlite:///<project>/.flotilla/flotilla.db``.

    The SQLite default is the run store's own file: DBOS's tables (``workflow_status``,
    ``operation_outputs`` …) and ours (``runs``, ``events`` …) have different names.
    """
    env = os.environ if environ is None else environ
    url = env.get(DATABASE_ENV, "").strip()
    if not url:
        from ..store import default_store_path

        return f"sqlite:///{default_store_path(root)}"
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")):
        raise ConfigError(f"environment variable {DATABASE_ENV}", DATABASE_ENV,
                          f"{url.split('://')[0]!r} is not a database flotilla can use",
                          "give postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or unset it for the "
                          "project's SQLite file")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return url


def launch(url: str | None = None, *, executor_id: str | None = None, listen: Sequence[str] = (),
           recover: bool = True, adopt: bool = False, heartbeat_interval: float = 2.0,
           dead_after: float = 15.0, host: str | None = None) -> Runtime:
    """Starts durable execution in this process and returns its ``Runtime``.

    ``listen`` names the queues this process takes work from: a worker names its queues;
    by default none, so a process that enqueues work for workers does not run it itself
    (it still runs what it starts and what it recovers).
    ``recover`` adopts pending workflows of executors found dead (see ``recover_dead``)
    once now; ``adopt`` keeps adopting, at every heartbeat, the dead executors' work queued on
    the ``listen`` queues (what a worker does: attempts, never a race's own workflow).
    ``dead_after`` is the heartbeat silence after which another machine's executor is dead;
    ``host`` names this machine in the heartbeat table (default: the host name).
    """
    global _runtime
    if _runtime is not None:
        raise RuntimeError("durable execution is already launched in this process; call shutdown() first")
    url = url or database_url()
    executor_id = executor_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    engine_kwargs: dict = {}
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _enable_wal(path)
        engine_kwargs = {"creator": lambda: _sqlite_connection(path)}
    config = DBOSConfig(name=APP_NAME, system_database_url=url, application_version=APP_VERSION,
                        executor_id=executor_id, serializer=JsonSerializer(),
                        # flotilla reports failed runs itself; DBOS would also print each traceback.
                        log_level=os.environ.get("FLOTILLA_DURABLE_LOG_LEVEL", "CRITICAL"),
                        db_engine_kwargs=engine_kwargs, notification_listener_polling_interval_sec=0.1)
    DBOS(config=config)
    local_queue = f"flotilla-local-{executor_id}"
    DBOS.listen_queues([*listen, local_queue])
    try:
        off_loop(DBOS.launch)
    except (dbos_error.DBOSException, sa.exc.SQLAlchemyError) as exc:
        DBOS.destroy(destroy_registry=False)
        raise UserError(f"cannot open the durable database {_redact(url)}: {exc}. Fix: check "
                        f"{DATABASE_ENV} (server running, database reachable, credentials)") from exc
    engine = _engine(url)
    _adopt_queues[:] = list(listen)
    heartbeat = Heartbeat(engine, executor_id, interval=heartbeat_interval, dead_after=dead_after, host=host,
                          on_beat=_adopt if adopt else None)
    heartbeat.start()
    _runtime = Runtime(url=url, executor_id=executor_id, heartbeat=heartbeat, engine=engine, local_queue=local_queue)
    if recover:
        recover_dead(queues=list(listen) if adopt else None)
    return _runtime


def shutdown() -> None:
    """Stops the heartbeat and DBOS. Workflows still running are left pending, for recovery."""
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is not None:
        if runtime.local_queue_made:
            try:
                off_loop(lambda: DBOS.delete_queue(runtime.local_queue))
            except Exception:  # noqa: BLE001 - a queue row left behind costs nothing
                pass
        runtime.heartbeat.stop()
        runtime.engine.dispose()
    DBOS.destroy(destroy_registry=False, workflow_completion_timeout_sec=0)


def current() -> Runtime:
    """The launched ``Runtime``; a clear error when ``launch`` was not called."""
    if _runtime is None:
        raise RuntimeError("durable execution is not launched in this process: call flotilla.durable.launch()")
    return _runtime


def is_launched() -> bool:
    return _runtime is not None


def recover_dead(ids: Sequence[str] | None = None, *, queues: Sequence[str] | None = None) -> list[str]:
    """Adopts pending workflows of executors not alive (heartbeat silent, or on this host their
    process gone) and returns their ids: those named in ``ids`` and their pending descendants
    (``flotilla resume RUN``), or those that were enqueued on one of ``queues`` (a worker adopts
    queued attempts, never the race that enqueued them), or, with neither, all of them.

    Re-enqueueing is conditional on the workflow still belonging to the dead executor, so two live
    executors adopting at once do not both run it.
    """
    runtime = current()
    alive = runtime.heartbeat.alive()
    pending = [w for w in off_loop(lambda: DBOS.list_workflows(status="PENDING", load_input=False,
                                                                   load_output=False, app_version=APP_VERSION))
               if w.executor_id and w.executor_id not in alive]
    if ids is not None:
        chosen, grew = set(ids), True
        while grew:
            more = {w.workflow_id for w in pending if w.parent_workflow_id in chosen} - chosen
            chosen |= more
            grew = bool(more)
        pending = [w for w in pending if w.workflow_id in chosen]
    if queues is not None:
        pending = [w for w in pending if w.queue_name in queues]
    if pending and not runtime.local_queue_made:
        off_loop(lambda: DBOS.register_queue(runtime.local_queue, polling_interval_sec=0.1,
                                             on_conflict="always_update"))
        runtime.local_queue_made = True
    adopted = []
    for w in pending:
        # DBOS's own recovery, one workflow at a time, onto this process's queue: a workflow that was
        # queued goes back on its own queue (a worker's attempt), any other runs here and nowhere else.
        if off_loop(lambda: _get_dbos_instance()._sys_db.reenqueue_for_recovery(
                w.workflow_id, [w.executor_id], runtime.local_queue)):
            adopted.append(w.workflow_id)
    return adopted


def off_loop(fn: Callable[[], T]) -> T:
    """Calls a blocking DBOS function, on a helper thread when an event loop runs here
    (DBOS refuses its blocking calls on a loop's thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


_adopt_queues: list[str] = []


def _adopt() -> None:
    if _runtime is not None:  # not while shutting down
        recover_dead(queues=_adopt_queues)


def _enable_wal(path: str) -> None:
    # journal_mode=WAL is stored in the file, so setting it once covers DBOS's connections.
    with sqlite3.connect(path, timeout=30) as db:
        db.execute("PRAGMA journal_mode=WAL")


def _sqlite_connection(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, timeout=30)
    # In WAL mode NORMAL fsyncs at checkpoints, not at every commit: a process crash loses
    # nothing, a power cut may lose the last commits. The run store makes the same choice.
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        return sa.create_engine("sqlite://", creator=lambda: _sqlite_connection(path), poolclass=sa.NullPool)
    return sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), pool_size=2,
                            pool_pre_ping=True)


def _redact(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
