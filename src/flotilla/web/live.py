"""Live updates: Server-Sent Events from the store's event tail.

Each connection follows the tail with its own cursor (``events_after``), polling the store every
``POLL_S``: SQLite has no notifications, and one indexed range query per connection and tick is
cheap. The cursor only moves past what was sent, and a browser that reconnects sends the last id it
saw (``Last-Event-ID``), so nothing is dropped however long a page was away. A page asks for one
run's family (``run=``: the run, its attempts and subagents, those started later included) or for
every run's starts and ends (the runs list).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from . import transcript

POLL_S = 0.05
KEEPALIVE_S = 15.0
BATCH = 500
REFRESH = {"RunStarted", "RunFinished", "AttemptStarted", "AttemptFinished", "UnitState", "CheckRan", "ModelCalled",
           "PlanReady", "FallbackUsed"}
"""Events after which a page re-renders its summary (a table, a board); the rest only add to a transcript."""
LIST_KINDS = {"RunStarted", "RunFinished", "PlanReady"}


async def stream(store: Any, *, after: int, run_id: str | None, stopping: asyncio.Event) -> AsyncIterator[bytes]:
    """The SSE body: one ``message`` per event (its id, kind, run, and the transcript HTML when it is
    the followed run's own), a comment now and then so that proxies keep the connection."""
    family = set(await asyncio.to_thread(store.family, run_id)) if run_id else set()
    cursor, quiet_since = after, time.monotonic()
    yield b"retry: 1000\n\n"
    while not stopping.is_set():
        events = await asyncio.to_thread(store.events_after, cursor, limit=BATCH)
        for event in events:
            cursor = event["id"]
            payload = _payload(event, run_id, family)
            if payload is not None:
                quiet_since = time.monotonic()
                yield f"id: {cursor}\ndata: {json.dumps(payload)}\n\n".encode()
        if len(events) == BATCH:
            continue
        if not events and time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"
        try:
            await asyncio.wait_for(stopping.wait(), POLL_S)
        except TimeoutError:
            pass


def _payload(event: dict[str, Any], run_id: str | None, family: set[str]) -> dict[str, Any] | None:
    kind, owner = event.get("event"), event.get("run_id")
    base = {"id": event["id"], "event": kind, "run_id": owner, "at": event.get("at")}
    if run_id is None:
        return {**base, "refresh": True} if kind in LIST_KINDS else None
    if kind == "RunStarted" and event.get("parent_id") in family:
        family.add(owner)
    if owner not in family:
        return None
    html = str(transcript.fragment(event)) if owner == run_id else ""
    if not html and kind not in REFRESH:
        return None
    return {**base, "html": html, "refresh": kind in REFRESH}


def last_id(header: str | None, query: str | None) -> int:
    """Where a stream starts: the browser's ``Last-Event-ID`` on a reconnect, else the page's ``after``."""
    for value in (header, query):
        if value and value.strip().isdigit():
            return int(value)
    return 0
