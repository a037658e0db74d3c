"""Metering an external CLI: its own gateway, its own key, its spend in the run store.

Each metered external attempt gets a flotilla gateway, served in-process on a free loopback port
for as long as the CLI runs, with one ephemeral key whose requests are admitted against the race's
budget (one meter for all its attempts).
Every request the CLI makes, whichever wire format it speaks (Messages, Chat Completions, Responses,
Gemini), is routed to the attempt's model (and its fallbacks), admitted against that key's budget
and, once served, written to the run store as the attempt's ``ModelCalled`` usage: the race table's
tokens and cost are flotilla's count, whatever the CLI reports. The gateway's keys and request rows
live in a private store under the attempt's home directory (never the project's store, where a key
would close the user's own ``flotilla gateway``), removed with it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..events import ModelCalled
from ..messages import Usage


@dataclass
class Metered:
    """A running attempt gateway: where the CLI sends its requests, and with which key."""

    url: str
    key: str


def _attempt_keys(store: Any, session: Any, run_id: str, scope: str, budget_usd: float | None) -> Any:
    from ..gateway.keys import KeyStore

    lock = threading.Lock()
    meter = session.meter(scope)
    held: dict[float, list[int]] = {}  # the meter's tickets by the bound the gateway reserved

    class AttemptKeys(KeyStore):
        """The gateway's keys. Admission holds each request's bound on the race's one meter, which every
        attempt's gateway shares, so attempts running side by side stay inside the race's budget together
        (admitted while spent + reserved is under it: at most one request's bound over). The request log
        is also the attempt's usage in the run store."""

        def reserve(self, key: Any, estimate_usd: float) -> bool:
            if budget_usd is None:
                return True
            with meter.lock:
                if meter.usd + meter.reserved_usd >= budget_usd:
                    return False
                held.setdefault(estimate_usd, []).append(meter.reserve(estimate_usd, 0))
            return True

        def settle(self, key: Any, estimate_usd: float, cost_usd: float) -> None:
            super().settle(key, estimate_usd, cost_usd)
            with meter.lock:  # the cost counted in the same step as the bound is let go: no gap to admit into
                tickets = held.get(estimate_usd)
                if tickets:
                    meter.release(tickets.pop())
                meter.usd += cost_usd

        def spent(self, key: Any) -> tuple[float, float]:
            return meter.usd, meter.reserved_usd

        def log(self, row: dict[str, Any]) -> None:
            super().log(row)
            if not row.get("model"):
                return  # refused before any backend was called: nothing was spent
            provider, _, model = row["model"].partition(":")
            cost = float(row.get("cost_usd") or 0.0)
            event = ModelCalled(run_id=run_id, provider=provider, model=model,
                                input_tokens=row.get("input_tokens") or 0,
                                output_tokens=row.get("output_tokens") or 0,
                                cache_read_tokens=row.get("cache_read_tokens") or 0,
                                cache_write_tokens=row.get("cache_write_tokens") or 0, cost_usd=cost,
                                latency_ms=row.get("latency_ms") or 0.0, ttft_ms=row.get("ttft_ms"),
                                error=row.get("error"))
            usage = Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                          cache_read_input_tokens=event.cache_read_tokens,
                          cache_creation_input_tokens=event.cache_write_tokens)
            with lock:  # the gateway's thread: one write at a time to the store and the sinks
                meter.add(0.0, usage)  # its cost was counted when the request settled
                session.emit(event)

    return AttemptKeys(store)


def attempt_settings(settings: Settings, chain: list[str]) -> Settings:
    """The project's settings with a gateway that sends every request to ``chain`` and asks for a key:
    the CLI may name any model (Gemini CLI asks a small one to route, Claude Code a haiku for titles);
    the attempt's model answers them all."""
    data = copy.deepcopy(settings.data)
    own = data.get("gateway") or {}
    data["gateway"] = {"default": chain, "auth": "keys", "log_requests": True,
                       **{k: own[k] for k in ("timeout_s", "fast_path", "fallbacks", "max_body_mb") if k in own}}
    return Settings(data, dict(settings.origins), settings.root)


@contextmanager
def metered(session: Any, *, run_id: str, scope: str, settings: Settings, chain: list[str],
            budget_usd: float | None, home: Path) -> Iterator[Metered]:
    """Serves an attempt's gateway for the duration of a ``with``; yields its URL and key."""
    from ..gateway.app import Gateway
    from ..gateway.server import running
    from ..gateway.state import LiveConfig

    from ..store import SQLiteStore

    home.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(home / "gateway.db")
    keys = _attempt_keys(store, session, run_id, scope, budget_usd)
    secret = keys.create(f"attempt-{run_id}", budget_usd=budget_usd, allow_unpriced=True)
    own = attempt_settings(settings, chain)
    live = LiveConfig(lambda: own, [], None)
    live.current.warm()
    gateway = Gateway(live, keys)
    try:
        with running(gateway) as url:
            yield Metered(url=url.rstrip("/"), key=secret)
    finally:
        keys.flush()
        store.close()
