"""Gateway keys, budgets and the request log, in the gateway's own tables of the run store.

A key is shown once, when it is created; the store keeps its SHA-256 only (keys
are 256 random bits, so a plain hash is enough). Budgets are reserved before a
call and settled after it with single conditional UPDATEs. What is reserved is
a bound the call cannot exceed (see ``app.Gateway._bound``), and a request is
admitted while spent + reserved is under the budget, so concurrent requests
(from one gateway or several sharing the store) end at most one request's
bound over it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
    models TEXT NOT NULL DEFAULT '[]', budget_usd REAL, spent_usd REAL NOT NULL DEFAULT 0,
    reserved_usd REAL NOT NULL DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT, key_name TEXT, route TEXT, model TEXT,
    status INTEGER, input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
    cache_write_tokens INTEGER, cost_usd REAL, latency_ms REAL, ttft_ms REAL, overhead_ms REAL,
    stream INTEGER, error TEXT, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS gateway_requests_at ON gateway_requests(at);
"""
_ADDED = (("gateway_keys", "allow_unpriced", "INTEGER NOT NULL DEFAULT 0"),
          ("gateway_requests", "estimated", "INTEGER DEFAULT 0"))
"""Columns later than the first schema, added to stores made before them."""
UNAUTHENTICATED = "(unauthenticated)"
"""The key name logged for a request refused before a key was verified."""

KEY_PREFIX = "flt-"
MASTER = "master"


@dataclass(frozen=True)
class Key:
    """A key as the gateway sees it once verified (never the secret itself)."""

    id: str
    name: str
    models: tuple[str, ...] = ()
    budget_usd: float | None = None
    prefix: str = ""
    allow_unpriced: bool = False
    """Whether a budgeted key may use models the catalog has no price for (their cost counts as $0)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models or model.split(":", 1)[-1] in self.models


MASTER_KEY = Key(id=MASTER, name=MASTER)
ANONYMOUS = Key(id="anonymous", name="anonymous")
"""Who a request is from when the gateway has no keys at all (loopback only)."""


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Keys, budgets and request rows over a ``SQLiteStore`` (anything with ``execute``/``executescript``)."""

    def __init__(self, store: Any, master_key: str | None = None) -> None:
        self.store = store
        self._master_hash = hash_key(master_key) if master_key else None
        store.executescript(SCHEMA)
        for table, column, kind in _ADDED:
            if not any(r["name"] == column for r in store.execute(f"PRAGMA table_info({table})")):
                store.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self._log = RequestLog(store)

    @property
    def has_master(self) -> bool:
        return self._master_hash is not None

    # -- keys -------------------------------------------------------------

    def create(self, name: str, *, budget_usd: float | None = None, models: list[str] | None = None,
               allow_unpriced: bool = False) -> str:
        """Creates a key and returns its secret: the only time it is ever visible.

        A revoked key's name may be taken again: the revoked row is renamed ``NAME~ID``
        (its spend and request rows stay), and the new key starts from nothing.
        """
        if not name.strip() or name == UNAUTHENTICATED:
            raise UserError(f"a gateway key needs a name other than {name!r}")
        if budget_usd is not None and budget_usd < 0:
            raise UserError(f"--budget-usd must be 0 or more, not {budget_usd}")
        held = self.store.execute("SELECT id, revoked FROM gateway_keys WHERE name = ?", (name,))
        if held and not held[0]["revoked"]:
            raise UserError(f"a gateway key named {name!r} exists; pick another name or revoke it first "
                            f"(`flotilla keys revoke {name}`)")
        if held:
            self.store.execute("UPDATE gateway_keys SET name = name || '~' || id WHERE id = ?", (held[0]["id"],))
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        self.store.execute(
            "INSERT INTO gateway_keys (id, name, hash, prefix, models, budget_usd, allow_unpriced, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (secrets.token_hex(5), name, hash_key(secret), secret[:8], json.dumps(models or []),
             budget_usd, int(allow_unpriced), time.time()))
        return secret

    def list(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.store.execute("SELECT * FROM gateway_keys ORDER BY created_at")]

    def show(self, name: str) -> dict[str, Any]:
        rows = self.store.execute("SELECT * FROM gateway_keys WHERE name = ? OR id = ?", (name, name))
        if not rows:
            raise UserError(f"no gateway key named {name!r}; `flotilla keys list` shows them")
        return _row(rows[0])

    def revoke(self, name: str) -> None:
        self.show(name)
        self.store.execute("UPDATE gateway_keys SET revoked = 1 WHERE name = ? OR id = ?", (name, name))

    def any_configured(self) -> bool:
        """Whether any key works now (the master key, or a created key not revoked)."""
        return self._master_hash is not None or bool(
            self.store.execute("SELECT 1 FROM gateway_keys WHERE revoked = 0 LIMIT 1"))

    def ever_created(self) -> bool:
        """Whether a key was ever created in this store (revoked ones count): such a gateway stays closed."""
        return bool(self.store.execute("SELECT 1 FROM gateway_keys LIMIT 1"))

    def verify(self, secret: str) -> Key | None:
        """The key a secret belongs to, or None when it is unknown or revoked."""
        digest = hash_key(secret)
        if self._master_hash and hmac.compare_digest(digest, self._master_hash):
            return MASTER_KEY
        rows = self.store.execute(
            "SELECT id, name, models, budget_usd, prefix, allow_unpriced FROM gateway_keys "
            "WHERE hash = ? AND revoked = 0", (digest,))
        if not rows:
            return None
        r = rows[0]
        return Key(id=r["id"], name=r["name"], models=tuple(json.loads(r["models"])),
                   budget_usd=r["budget_usd"], prefix=r["prefix"], allow_unpriced=bool(r["allow_unpriced"]))

    # -- budgets ----------------------------------------------------------

    def reserve(self, key: Key, estimate_usd: float) -> bool:
        """Holds ``estimate_usd`` against the key's budget; False when nothing unreserved is left.

        One conditional UPDATE: admitted only while spent + reserved is under the
        budget, so the most a key can overspend is one admitted request's bound.
        """
        if key.budget_usd is None or key.id in (MASTER, ANONYMOUS.id):
            return True
        rows = self.store.execute(
            "UPDATE gateway_keys SET reserved_usd = reserved_usd + ? "
            "WHERE id = ? AND spent_usd + reserved_usd < budget_usd RETURNING id", (estimate_usd, key.id))
        return bool(rows)

    def settle(self, key: Key, estimate_usd: float, cost_usd: float) -> None:
        """Releases a reservation and charges what the call really cost."""
        if key.id in (MASTER, ANONYMOUS.id):
            return
        if key.budget_usd is None:
            self.store.execute("UPDATE gateway_keys SET spent_usd = spent_usd + ? WHERE id = ?",
                               (cost_usd, key.id))
            return
        self.store.execute(
            "UPDATE gateway_keys SET reserved_usd = MAX(0, reserved_usd - ?), spent_usd = spent_usd + ? "
            "WHERE id = ?", (estimate_usd, cost_usd, key.id))

    def spent(self, key: Key) -> tuple[float, float]:
        """(spent, reserved) in USD."""
        r = self.store.execute("SELECT spent_usd, reserved_usd FROM gateway_keys WHERE id = ?", (key.id,))
        return (r[0]["spent_usd"], r[0]["reserved_usd"]) if r else (0.0, 0.0)

    def clear_reservations(self) -> None:
        """Drops reservations left by a gateway that stopped mid-call (run at start-up)."""
        self.store.execute("UPDATE gateway_keys SET reserved_usd = 0 WHERE reserved_usd != 0")

    # -- the request log --------------------------------------------------

    def log(self, row: dict[str, Any]) -> None:
        """Queues one request's row; a writer thread stores it within moments (see ``RequestLog``)."""
        self._log.add(row)

    def flush(self, timeout: float = 5.0) -> None:
        """Waits until every queued row is in the store."""
        self._log.flush(timeout)

    def usage(self, by: str, since: float | None = None) -> list[dict[str, Any]]:
        """Requests, tokens and cost grouped by ``key``, ``model`` or ``route``."""
        column = {"key": "key_name", "model": "model", "route": "route"}.get(by)
        if column is None:
            raise UserError(f"--by must be key, model or route, not {by!r}")
        sql = (f"SELECT {column} AS name, COUNT(*) AS requests, SUM(status >= 400) AS errors, "
               "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
               "SUM(cache_read_tokens) AS cache_read_tokens, SUM(cache_write_tokens) AS cache_write_tokens, "
               "SUM(cost_usd) AS cost_usd, SUM(estimated) AS estimated, AVG(latency_ms) AS avg_latency_ms, "
               "AVG(ttft_ms) AS avg_ttft_ms "
               "FROM gateway_requests WHERE at >= ? GROUP BY name ORDER BY cost_usd DESC, requests DESC")
        return [dict(r) for r in self.store.execute(sql, (since or 0.0,))]


_COLUMNS = ("request_id", "key_name", "route", "model", "status", "input_tokens", "output_tokens",
            "cache_read_tokens", "cache_write_tokens", "cost_usd", "latency_ms", "ttft_ms", "overhead_ms",
            "stream", "error", "estimated", "at")
_BATCH = 500  # rows per INSERT (17 columns each: well under SQLite's limit on parameters)


class RequestLog:
    """Request rows written by a background thread, many rows per statement.

    One INSERT (and commit) per request cost the event loop about as much as
    the rest of a request together; here the loop only appends to a queue.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        self._queue.put(tuple(row.get(c) for c in _COLUMNS))
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="flotilla-gateway-log", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [i for i in items if isinstance(i, tuple)]
            for start in range(0, len(rows), _BATCH):
                self._write(rows[start:start + _BATCH])
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        marks = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
        sql = (f"INSERT INTO gateway_requests ({', '.join(_COLUMNS)}) VALUES "
               + ", ".join([marks] * len(rows)))
        try:
            self.store.execute(sql, tuple(v for row in rows for v in row))
        except Exception:  # a full disk must not stop the gateway; the rows are lost, said once each batch
            logging.getLogger("flotilla.gateway").exception("could not write %d request rows", len(rows))


def _row(r: Any) -> dict[str, Any]:
    d = dict(r)
    d.pop("hash", None)
    d["models"] = json.loads(d["models"])
    d["revoked"] = bool(d["revoked"])
    d["allow_unpriced"] = bool(d.get("allow_unpriced"))
    return d
