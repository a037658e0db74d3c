"""A ledger's page: its features with ``passes`` (flotilla's verdict, never the model's), the sessions and
money each took, the last failure, and the log. The ledger's ``ledger-work`` runs sit under it."""

from __future__ import annotations

from typing import Any

from ._html import Safe, h, join
from ._layout import money

LOG_LINES = 30


def board(run: dict[str, Any]) -> Safe:
    meta = run["meta"]
    features = meta.get("features") or []
    if not features:
        return h('<section class="board"><h2>features</h2><p class="empty">{s}</p></section>',
                 s=meta.get("state") or "no features yet")
    cards = join(_feature(f) for f in features)
    passing = sum(bool(f.get("passes")) for f in features)
    log = meta.get("log") or []
    shown = join(h("<li>{e}</li>", e=e) for e in log[-LOG_LINES:])
    return h('<section class="board"><h2>features <small>{p} of {n} pass · {state}</small></h2>'
             '<div class="columns">{cards}</div><h2>log</h2><ul class="log">{log}</ul></section>',
             p=passing, n=len(features), state=meta.get("state", ""), cards=cards, log=shown)


def _feature(f: dict[str, Any]) -> Safe:
    passes = bool(f.get("passes"))
    return h('<article class="attempt{win}" data-feature="{id}"><h3>{id}</h3><p>{name}</p><dl>'
             '<dt>passes</dt><dd class="check {cls}">{mark}</dd><dt>verify</dt><dd><code>{verify}</code></dd>'
             '<dt>sessions</dt><dd>{sessions}</dd><dt>cost</dt><dd>{cost}</dd></dl>{failure}{note}</article>',
             win=" winner" if passes else "", id=f.get("id", ""), name=f.get("name", ""),
             cls="pass" if passes else "fail", mark="✓ passes" if passes else "✗ not yet",
             verify=f.get("verify", ""), sessions=f.get("sessions", 0), cost=money(f.get("cost_usd")),
             failure=h('<pre class="error">{e}</pre>', e=f["last_failure"]) if f.get("last_failure") and not passes
             else "", note=h('<p class="note">{n}</p>', n=f["note"]) if f.get("note") else "")
