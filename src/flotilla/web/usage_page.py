"""Where the money and tokens went: cost over time by model, by model and by role (the run store's usage
rows), and the gateway's requests by key, model and route (its own table, when this store has one)."""

from __future__ import annotations

import time
from typing import Any

from ._charts import bars, stacked
from ._html import Safe, h, join

DAYS = 14


def usage_body(store: Any) -> Safe:
    since = time.time() - DAYS * 86400
    rows = store.execute("SELECT date(at, 'unixepoch') AS day, provider || ':' || model AS model, "
                         "SUM(cost_usd) AS usd, SUM(input_tokens + output_tokens) AS tokens FROM usage WHERE at >= ? "
                         "GROUP BY day, model ORDER BY day", (since,))
    days = sorted({r["day"] for r in rows})
    series: dict[str, list[float]] = {}
    for r in rows:
        series.setdefault(r["model"], [0.0] * len(days))[days.index(r["day"])] += r["usd"] or 0.0
    by_model = _sum(rows, "model", "usd")
    roles = store.execute("SELECT role, SUM(cost_usd) AS usd FROM usage WHERE at >= ? GROUP BY role", (since,))
    charts = [stacked(f"cost per day by model, last {DAYS} days", days, series),
              bars("cost by model", by_model, show=lambda v: f"${v:.4f}"),
              bars("tokens by model", _sum(rows, "model", "tokens")),
              bars("cost by role", [(r["role"] or "?", r["usd"] or 0.0) for r in roles], show=lambda v: f"${v:.4f}")]
    charts += _gateway(store, since)
    shown = join(c for c in charts if c)
    unpriced = sorted({r["model"] for r in rows if r["tokens"] and not r["usd"]})
    note = h('<p class="note">cost unknown (no price in the catalog) for {m}</p>', m=", ".join(unpriced)) if unpriced else ""
    return h('<h1>usage</h1>{note}<div class="charts">{c}</div>', note=note,
             c=shown or Safe('<p class="empty">no model calls yet</p>'))


def _sum(rows: list[Any], key: str, field: str) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for r in rows:
        totals[r[key]] = totals.get(r[key], 0.0) + (r[field] or 0.0)
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _gateway(store: Any, since: float) -> list[Safe]:
    """The gateway's requests by key, model and route (key names only: a key's secret is never stored)."""
    if not store.execute("SELECT 1 FROM sqlite_master WHERE name = 'gateway_requests'"):
        return []
    out = []
    for column in ("key_name", "model", "route"):
        rows = store.execute(f"SELECT {column} AS label, COUNT(*) AS n, SUM(cost_usd) AS usd FROM gateway_requests "
                             f"WHERE at >= ? GROUP BY {column} ORDER BY usd DESC LIMIT 12", (since,))
        out.append(bars(f"gateway cost by {column.replace('_name', '')}",
                        [(f"{r['label'] or '—'} ({r['n']})", r["usd"] or 0.0) for r in rows],
                        show=lambda v: f"${v:.4f}"))
    return out
