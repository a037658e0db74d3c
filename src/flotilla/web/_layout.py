"""The page shell and the small pieces every page uses: a status badge, a money figure, a form."""

from __future__ import annotations

import time
from typing import Any

from ..models.usage import format_cost
from ._html import Safe, h, join


def page(title: str, body: Safe, *, stream: str = "", said: str = "") -> Safe:
    """A whole page. ``stream`` is the SSE address the page's script follows for live updates."""
    notice = h('<p class="said" role="status">{said}</p>', said=said) if said else ""
    return h('<!doctype html><html lang="en"><head><meta charset="utf-8">'
             '<meta name="viewport" content="width=device-width, initial-scale=1">'
             '<title>{title} · flotilla</title><link rel="stylesheet" href="/static/flotilla.css">'
             '<script src="/static/flotilla.js" defer></script></head>'
             '<body data-stream="{stream}"><header><a class="brand" href="/">flotilla</a>'
             '<span class="live" id="live" title="live updates">●</span>'
             '<nav class="top"><a href="/">runs</a><a href="/usage">usage</a></nav></header>'
             '<main>{notice}{body}</main></body></html>',
             title=title, stream=stream, notice=notice, body=body)


def badge(status: str) -> Safe:
    return h('<span class="badge s-{cls}">{status}</span>', cls=status.split()[0], status=status)


def money(usd: float | None, tokens: int = 0, metered: bool = True) -> str:
    return format_cost(usd, tokens=tokens, metered=metered)


def ago(at: float) -> str:
    seconds = max(0.0, time.time() - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f}s"


def action(url: str, label: str, *, confirm: str = "", fields: dict[str, Any] | None = None,
           cls: str = "") -> Safe:
    """A button that POSTs to ``url`` (destructive ones ask first, when ``confirm`` is given)."""
    hidden = join(h('<input type="hidden" name="{k}" value="{v}">', k=k, v=v) for k, v in (fields or {}).items())
    return h('<form method="post" action="{url}" data-confirm="{confirm}" class="inline">{hidden}'
             '<button type="submit" class="{cls}">{label}</button></form>',
             url=url, confirm=confirm, hidden=hidden, label=label, cls=cls)


def table(headers: list[str], rows: list[list[Any]], *, cls: str = "") -> Safe:
    head = join(h("<th>{x}</th>", x=x) for x in headers)
    body = join(h("<tr>{cells}</tr>", cells=join(h("<td>{c}</td>", c=c) for c in row)) for row in rows)
    return h('<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
             cls=cls, head=head, body=body)


def run_link(run_id: str, text: str | None = None) -> Safe:
    return h('<a href="/runs/{id}">{text}</a>', id=run_id, text=text or run_id)
