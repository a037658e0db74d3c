"""Who is alive: one row per running executor, refreshed by a heartbeat thread.

DBOS tags each workflow with the executor running it, but only its paid
Conductor notices that an executor died. This table does it for us: every
launched process beats every ``interval`` seconds (the database's clock, so
machines with skewed clocks agree); an executor is dead when its beat is older
than ``dead_after``, or at once when it ran on this host and its pid is gone
(``kill -9`` on a laptop should not wait out the silence). It lives in the
same database as DBOS's tables, as ``flotilla_executors``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

_TABLE = "flotilla_executors"
_SCHEMA = f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
    executor_id VARCHAR(200) PRIMARY KEY, host VARCHAR(255) NOT NULL, pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL, beat_at DOUBLE PRECISION NOT NULL)"""


@dataclass(frozen=True)
class Executor:
    executor_id: str
    host: str
    pid: int
    age: float
    """Seconds since its last beat."""


class Heartbeat:
    """Keeps this executor's row fresh and says which executors are alive."""

    def __init__(self, engine: sa.Engine, executor_id: str, *, interval: float, dead_after: float,
                 host: str | None = None, on_beat: Callable[[], object] | None = None) -> None:
        self.engine, self.executor_id = engine, executor_id
        self.interval, self.dead_after = interval, dead_after
        self.host, self.pid = host or socket.gethostname(), os.getpid()
        self.on_beat = on_beat
        """Called after each beat on the heartbeat thread (a worker adopts dead executors' work there)."""
        self._now = ("EXTRACT(EPOCH FROM clock_timestamp())" if engine.dialect.name == "postgresql"
                     else "((julianday('now') - 2440587.5) * 86400.0)")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with engine.begin() as c:
            c.execute(sa.text(_SCHEMA))

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="flotilla-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops beating and removes the row: a clean exit leaves nothing to adopt."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        with self.engine.begin() as c:
            c.execute(sa.text(f"DELETE FROM {_TABLE} WHERE executor_id = :e"), {"e": self.executor_id})

    def beat(self) -> None:
        with self.engine.begin() as c:
            updated = c.execute(sa.text(f"UPDATE {_TABLE} SET beat_at = {self._now} WHERE executor_id = :e"),
                                {"e": self.executor_id}).rowcount
            if not updated:
                c.execute(sa.text(f"INSERT INTO {_TABLE} (executor_id, host, pid, started_at, beat_at) "
                                  f"VALUES (:e, :h, :p, {self._now}, {self._now})"),
                          {"e": self.executor_id, "h": self.host, "p": self.pid})

    def executors(self) -> list[Executor]:
        with self.engine.begin() as c:
            rows = c.execute(sa.text(f"SELECT executor_id, host, pid, {self._now} - beat_at AS age "
                                     f"FROM {_TABLE}")).fetchall()
        return [Executor(r.executor_id, r.host, int(r.pid), float(r.age)) for r in rows]

    def alive(self) -> set[str]:
        """The executors that beat recently, less those of this host whose process is gone."""
        live = {self.executor_id}
        for e in self.executors():
            if e.age > self.dead_after:
                continue
            if e.host == self.host and e.pid != self.pid and not _pid_alive(e.pid):
                continue
            live.add(e.executor_id)
        return live

    def forget(self, executor_ids: list[str]) -> None:
        """Drops the rows of executors whose work was adopted."""
        with self.engine.begin() as c:
            for e in executor_ids:
                if e != self.executor_id:
                    c.execute(sa.text(f"DELETE FROM {_TABLE} WHERE executor_id = :e"), {"e": e})

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                if self.on_beat is not None:
                    self.on_beat()
            except Exception:  # noqa: BLE001 - the thread must outlive a bad beat
                # A missed beat or adoption is retried next interval; dead_after allows for several.
                logging.getLogger(__name__).warning("heartbeat of %s failed", self.executor_id, exc_info=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
