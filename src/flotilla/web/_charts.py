"""Charts as inline SVG drawn on the server: no chart library, no script, labels escaped like any text."""

from __future__ import annotations

from collections.abc import Callable

from ._html import Safe, h, join

_COLOURS = ("#0969da", "#1a7f37", "#8250df", "#bf3989", "#9a6700", "#cf222e", "#1b7c83", "#6e7781")


def bars(title: str, items: list[tuple[str, float]], *, show: Callable[[float], str] = lambda v: f"{v:,.0f}",
         highlight: str | None = None) -> Safe:
    """Horizontal bars, one per (label, value), largest scale first; ``highlight`` picks one label out."""
    if not items or not any(v for _l, v in items):
        return Safe("")
    top = max(v for _l, v in items) or 1.0
    row, label_w, bar_w = 22, 150, 300
    parts = []
    for i, (label, value) in enumerate(items):
        y = i * row
        width = max(1.0, bar_w * value / top)
        colour = "#1a7f37" if label == highlight else _COLOURS[0]
        parts.append(h('<text x="{lx}" y="{ty}" text-anchor="end" class="lbl">{label}</text>'
                       '<rect x="{x}" y="{y}" width="{w:.1f}" height="{hgt}" rx="3" fill="{c}"></rect>'
                       '<text x="{vx:.1f}" y="{ty}" class="val">{value}</text>',
                       lx=label_w - 8, ty=y + 15, label=label[:28], x=label_w, y=y + 3, w=width, hgt=row - 6,
                       c=colour, vx=label_w + width + 6, value=show(value)))
    height = row * len(items)
    return h('<figure class="chart"><figcaption>{title}</figcaption><svg viewBox="0 0 {vw} {vh}" width="{vw}" '
             'height="{vh}" role="img" aria-label="{title}">{parts}</svg></figure>',
             title=title, vw=label_w + bar_w + 90, vh=height, parts=join(parts))


def stacked(title: str, columns: list[str], series: dict[str, list[float]], *,
            show: Callable[[float], str] = lambda v: f"${v:.4f}") -> Safe:
    """Vertical stacked bars: one column per ``columns`` entry, one colour per series (a legend under)."""
    if not columns or not series:
        return Safe("")
    totals = [sum(values[i] for values in series.values()) for i in range(len(columns))]
    if not any(totals):
        return Safe("")
    top = max(totals)
    col_w, plot_h, left = 46, 160, 70
    parts = [h('<text x="{x}" y="12" class="val">{v}</text>', x=4, v=show(top))]
    for i, column in enumerate(columns):
        x, base = left + i * col_w, plot_h + 20
        for s, (name, values) in enumerate(series.items()):
            height = plot_h * values[i] / top
            base -= height
            parts.append(h('<rect x="{x}" y="{y:.1f}" width="{w}" height="{hgt:.1f}" fill="{c}"><title>{t}</title></rect>',
                           x=x, y=base, w=col_w - 10, hgt=height, c=_COLOURS[s % len(_COLOURS)],
                           t=f"{column} {name}: {show(values[i])}"))
        parts.append(h('<text x="{x}" y="{y}" class="lbl small">{c}</text>', x=x, y=plot_h + 36, c=column[-5:]))
    legend = join(h('<span class="key"><i class="swatch c{n}"></i>{name}</span>', n=s % len(_COLOURS), name=name)
                  for s, name in enumerate(series))
    width = left + col_w * len(columns) + 10
    return h('<figure class="chart"><figcaption>{title}</figcaption><svg viewBox="0 0 {vw} {vh}" width="{vw}" '
             'height="{vh}" role="img" aria-label="{title}">{parts}</svg><div class="legend">{legend}</div></figure>',
             title=title, vw=width, vh=plot_h + 44, parts=join(parts), legend=legend)
