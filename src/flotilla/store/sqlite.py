"""The run store on one SQLite file (WAL mode): runs, events, usage, steering.

Every write commits at once, so a crash loses nothing that was emitted. One
connection guarded by a lock serves all threads of the process; other
processes (``flotilla steer``) share the file through WAL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..events import Event, ModelCalled

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    parent_id TEXT, status TEXT NOT NULL DEFAULT 'running', reason TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}', result TEXT, pid INTEGER,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, kind TEXT NOT NULL,
    at REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, provider TEXT, model TEXT, role TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
    cache_write_tokens INTEGER, cost_usd REAL, latency_ms REAL, ttft_ms REAL, error TEXT, at REAL);
CREATE INDEX IF NOT EXISTS usage_run ON usage(run_id);
CREATE TABLE IF NOT EXISTS steering (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    read_only INTEGER NOT NULL DEFAULT 0, stop INTEGER NOT NULL DEFAULT 0,
    taken INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, value TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS signals_topic ON signals(topic, id);
"""


def new_id() -> str:
    return uuid.uuid4().hex[:10]


class SQLiteStore:
    """The default ``RunStore``."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -- helpers --------------------------------------------------------

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Runs one statement under the store's lock; for modules that keep their own tables here."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def executescript(self, sql: str) -> None:
        with self._lock:
            self._db.executescript(sql)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- runs -----------------------------------------------------------

    def create_run(self, kind: str, title: str = "", *, parent_id: str | None = None,
                   meta: dict[str, Any] | None = None, run_id: str | None = None, exist_ok: bool = False) -> str:
        """Records a new run. ``exist_ok`` keeps an existing row of that id as it is: a resumed run
        records its start again, safely."""
        import os

        run_id = run_id or new_id()
        now = time.time()
        self.execute(
            f"INSERT {'OR IGNORE ' if exist_ok else ''}INTO runs "
            "(id, kind, title, parent_id, meta, pid, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, kind, title, parent_id, json.dumps(meta or {}), os.getpid(), now, now),
        )
        return run_id

    def finish_run(self, run_id: str, status: str, reason: str = "",
                   result: dict[str, Any] | None = None) -> None:
        self.execute(
            "UPDATE runs SET status = ?, reason = ?, result = ?, updated_at = ? WHERE id = ?",
            (status, reason, json.dumps(result) if result is not None else None, time.time(), run_id),
        )

    def update_meta(self, run_id: str, **meta: Any) -> None:
        with self._lock:
            current = self.get_run(run_id)["meta"]
            current.update(meta)
            self.execute("UPDATE runs SET meta = ?, updated_at = ? WHERE id = ?",
                         (json.dumps(current), time.time(), run_id))

    def get_run(self, run_id: str) -> dict[str, Any]:
        rows = self.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            rows = self.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY created_at DESC", (run_id + "%",))
            if len(rows) != 1:
                from ..errors import UserError

                if len(rows) > 1:
                    matches = ", ".join(f"{r['id']} ({r['kind']}: {r['title'][:40]})" for r in rows[:10])
                    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
                    raise UserError(f"run id {run_id!r} is ambiguous: it matches {matches}{more}; "
                                    "give more of the id")
                raise UserError(f"no run {run_id!r} in {self.path}; `flotilla runs` lists them")
        return _run(rows[0])

    def list_runs(self, *, kind: str | None = None, parent_id: str | None = None, limit: int = 50,
                  status: str | None = None, top_level: bool = False, offset: int = 0) -> list[dict[str, Any]]:
        """Runs newest first; ``top_level`` leaves out attempts and subagents (runs with a parent)."""
        sql, params = "SELECT * FROM runs WHERE 1=1", []
        for column, value in (("kind", kind), ("parent_id", parent_id), ("status", status)):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        if top_level:
            sql += " AND parent_id IS NULL"
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return [_run(r) for r in self.execute(sql, tuple(params))]

    def family(self, run_id: str) -> list[str]:
        """The run and all its descendants (attempts, subagents), parents first."""
        ids, frontier = [run_id], [run_id]
        while frontier:
            rows = self.execute(f"SELECT id FROM runs WHERE parent_id IN ({','.join('?' * len(frontier))})",
                                tuple(frontier))
            frontier = [r["id"] for r in rows]
            ids += frontier
        return ids

    # -- events and usage -----------------------------------------------

    def emit(self, event: Event) -> None:
        data = event.to_dict()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("INSERT INTO events (run_id, kind, at, data) VALUES (?, ?, ?, ?)",
                                 (event.run_id, data["event"], event.at, json.dumps(data, default=str)))
                if isinstance(event, ModelCalled):
                    self._db.execute(
                        "INSERT INTO usage (run_id, provider, model, role, input_tokens, output_tokens, "
                        "cache_read_tokens, cache_write_tokens, cost_usd, latency_ms, ttft_ms, error, at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (event.run_id, event.provider, event.model, event.role, event.input_tokens,
                         event.output_tokens, event.cache_read_tokens, event.cache_write_tokens,
                         event.cost_usd, event.latency_ms, event.ttft_ms, event.error, event.at))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        if kind:
            rows = self.execute("SELECT data FROM events WHERE run_id = ? AND kind = ? ORDER BY id",
                                (run_id, kind))
        else:
            rows = self.execute("SELECT data FROM events WHERE run_id = ? ORDER BY id", (run_id,))
        return [json.loads(r["data"]) for r in rows]

    def events_after(self, after_id: int, *, run_ids: list[str] | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        """The event tail: events committed after ``after_id`` (oldest first), each with its ``id``, for
        a live view that polls (the dashboard). SQLite gives ids in commit order (one writer at a time),
        so a reader that goes on from the last id it saw misses none."""
        sql, params = "SELECT id, data FROM events WHERE id > ?", [after_id]
        if run_ids is not None:
            sql += f" AND run_id IN ({','.join('?' * len(run_ids))})"
            params += run_ids
        rows = self.execute(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [{**json.loads(r["data"]), "id": r["id"]} for r in rows]

    def last_event_id(self) -> int:
        """The id of the newest event (0 for none): where a live view starts its tail."""
        return int(self.execute("SELECT COALESCE(MAX(id), 0) AS id FROM events")[0]["id"])

    def usage(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Usage rows summed by (run, provider, model, role)."""
        sql = ("SELECT run_id, provider, model, role, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, "
               "SUM(output_tokens) AS output_tokens, SUM(cache_read_tokens) AS cache_read_tokens, "
               "SUM(cache_write_tokens) AS cache_write_tokens, SUM(cost_usd) AS cost_usd FROM usage")
        params: tuple[Any, ...] = ()
        if run_ids is not None:
            sql += f" WHERE run_id IN ({','.join('?' * len(run_ids))})"
            params = tuple(run_ids)
        sql += " GROUP BY run_id, provider, model, role"
        return [dict(r) for r in self.execute(sql, params)]

    def cost(self, run_ids: list[str]) -> float:
        """What these runs' model calls cost, in USD (the usage rows are the record of spend)."""
        if not run_ids:
            return 0.0
        rows = self.execute(f"SELECT SUM(cost_usd) AS usd FROM usage WHERE run_id IN ({','.join('?' * len(run_ids))})",
                            tuple(run_ids))
        return float(rows[0]["usd"] or 0.0)

    # -- signals (approvals, a person's answer to a waiting run) ----------

    def send_signal(self, topic: str, value: Any) -> None:
        self.execute("INSERT INTO signals (topic, value, at) VALUES (?, ?, ?)",
                     (topic, json.dumps(value), time.time()))

    def first_signal(self, topic: str) -> Any:
        """The first value sent on ``topic``, or None. A topic is answered once (``run:gate:1``): reading
        it again, as a resumed run does, gives the same answer."""
        rows = self.execute("SELECT value FROM signals WHERE topic = ? ORDER BY id LIMIT 1", (topic,))
        return json.loads(rows[0]["value"]) if rows else None

    # -- steering -------------------------------------------------------

    def send_steering(self, run_id: str, message: str = "", *, read_only: bool = False,
                      stop: bool = False) -> None:
        self.execute("INSERT INTO steering (run_id, message, read_only, stop, at) VALUES (?, ?, ?, ?, ?)",
                     (run_id, message, int(read_only), int(stop), time.time()))

    def take_steering(self, run_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.execute("SELECT * FROM steering WHERE run_id = ? AND taken = 0 ORDER BY id", (run_id,))
            if rows:
                self.execute(f"UPDATE steering SET taken = 1 WHERE id IN ({','.join('?' * len(rows))})",
                             tuple(r["id"] for r in rows))
        return [{"message": r["message"], "read_only": bool(r["read_only"]), "stop": bool(r["stop"])}
                for r in rows]


def _run(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    run["meta"] = json.loads(run["meta"] or "{}")
    run["result"] = json.loads(run["result"]) if run["result"] else None
    return run
