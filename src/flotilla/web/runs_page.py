"""The runs list: every top-level run, newest first, filterable and paginated, under a "needs you" strip."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from . import _data
from ._html import Safe, h, join
from ._layout import action, ago, badge, duration, money, run_link, table

KINDS = ("agent", "race", "fanout", "ledger", "eval", "ask", "pipeline", "review")
STATUSES = ("running", "done", "failed", "cancelled", "limited")


def runs_region(store: Any, catalog: Any, *, kind: str = "", status: str = "", page: int = 0) -> Safe:
    """The part of the page that live updates replace: the strip and the table."""
    rows = _data.runs_page(store, catalog, kind=kind, status=status, page=page)
    more = len(rows) > _data.PAGE
    rows = rows[:_data.PAGE]
    cells = [[run_link(r["id"]), r["kind"], badge(r["state"]), h('<span class="title">{t}</span>', t=r["title"]),
              ", ".join(r["agents"]), ", ".join(r["models"]), ago(r["created_at"]), duration(r["seconds"]),
              f"{r['tokens']:,}", money(r["cost"], r["tokens"])] for r in rows]
    listing = table(["run", "kind", "status", "title", "agent", "models", "started", "duration", "tokens", "cost"],
                    cells, cls="runs") if rows else h('<p class="empty">no runs{what}</p>',
                                                      what=" match these filters" if kind or status else " yet")
    pager = []
    if page:
        pager.append(h('<a href="/?{q}">← newer</a>', q=urlencode({"kind": kind, "status": status, "page": page - 1})))
    if more:
        pager.append(h('<a href="/?{q}">older →</a>', q=urlencode({"kind": kind, "status": status, "page": page + 1})))
    return join([_needs_you(store), listing, h('<nav class="pager">{p}</nav>', p=join(pager, " "))])


def _needs_you(store: Any) -> Safe:
    waiting = _data.needs_you(store)
    if not waiting:
        return Safe("")
    items = join(h('<li>{link} <span class="kind">{kind}</span> {title} — <strong>{why}</strong></li>',
                   link=run_link(w["id"]), kind=w["kind"], title=w["title"], why=w["why"]) for w in waiting)
    return h('<section class="needs" id="needs-you"><h2>needs you</h2><ul>{items}</ul></section>', items=items)


def runs_body(region: Safe, *, kind: str, status: str, page: int) -> Safe:
    def options(values: tuple[str, ...], chosen: str) -> Safe:
        return join([h('<option value="">all</option>')] + [
            h('<option value="{v}"{sel}>{v}</option>', v=v, sel=Safe(" selected") if v == chosen else "")
            for v in values])

    filters = h('<form class="filters" method="get" action="/">kind <select name="kind">{kinds}</select> '
                'status <select name="status">{statuses}</select> <button type="submit">filter</button></form>',
                kinds=options(KINDS, kind), statuses=options(STATUSES, status))
    refresh = "/?" + urlencode({"kind": kind, "status": status, "page": page, "fragment": 1})
    gc = action("/gc", "gc", confirm="Remove the worktrees and branches that crashed runs left, and give those "
                "runs up for good?", cls="danger")
    return h('<h1>runs</h1><div class="bar">{filters}{gc}</div><section id="region" data-refresh="{refresh}">'
             '{region}</section>', filters=filters, gc=gc, refresh=refresh, region=region)
