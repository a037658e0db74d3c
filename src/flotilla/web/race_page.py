"""The race board: a race's attempts side by side (state, model, agent, check and its output, judge score
and reason, place and why, +/−, tokens, cost, time), any attempt's diff, and two attempts' diffs side by side."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from . import _data
from ._charts import bars
from ._html import Safe, h, join
from ._layout import action, badge, duration, money

MAX_DIFF_LINES = 2000


def board(race: dict[str, Any], store: Any) -> Safe:
    rows = _data.attempts(store, race)
    result = race["result"] or {}
    winner = result.get("winner")
    can_merge = bool(result) and not result.get("merged")
    columns = join(_column(race, a, winner, can_merge) for a in rows)
    summary = _summary(result) if result else Safe("")
    names = [a["name"] for a in rows]
    compare = ""
    if len(names) >= 2:
        pick = lambda field, chosen: join(  # noqa: E731
            h('<option value="{n}"{sel}>{n}</option>', n=n, sel=Safe(" selected") if n == chosen else "") for n in names)
        compare = h('<form class="compare" method="get" action="/runs/{id}/compare">compare '
                    '<select name="a">{a}</select> with <select name="b">{b}</select> '
                    '<button type="submit">side by side</button></form>',
                    id=race["id"], a=pick("a", names[0]), b=pick("b", names[1]))
    tokens = [(a["name"], float((a.get("input_tokens") or 0) + (a.get("output_tokens") or 0))) for a in rows]
    costs = [(a["name"], float(a.get("cost_usd") or 0.0)) for a in rows]
    charts = h('<div class="charts">{t}{c}</div>', t=bars("tokens per attempt", tokens, highlight=winner),
               c=bars("cost per attempt", costs, show=lambda v: f"${v:.4f}", highlight=winner))
    return h('<section class="board"><h2>race board</h2>{summary}<div class="columns">{columns}</div>{compare}'
             '{charts}</section>', summary=summary, columns=columns, compare=compare, charts=charts)


def _column(race: dict[str, Any], a: dict[str, Any], winner: str | None, can_merge: bool) -> Safe:
    check = a.get("check")
    if check:
        check_cell = h('<div class="check {cls}">{mark} {summary}<details><summary>output</summary>'
                       '<pre>$ {command} (exit {code})\n{tail}</pre></details></div>',
                       cls="pass" if check.get("passed") else "fail", mark="✓" if check.get("passed") else "✗",
                       summary=check.get("summary", ""), command=check.get("command", ""),
                       code=check.get("exit_code"), tail=check.get("tail", ""))
    else:
        check_cell = h('<div class="check none">no check yet</div>')
    tokens = (a.get("input_tokens") or 0) + (a.get("output_tokens") or 0)
    judge = "—" if a.get("judge_score") is None else f"{a['judge_score']:g}/10"
    why = a.get("reason") or ""
    place = a.get("place") or "—"
    merge = ""
    if can_merge and a.get("passed") and (a["name"] != winner or not (race["result"] or {}).get("merged")):
        merge = action(f"/runs/{race['id']}/merge", f"merge {a['name']}", fields={"attempt": a["name"]},
                       confirm=f"Merge attempt {a['name']} into {race['meta'].get('base_branch', 'the base branch')}?")
    rid = a.get("run_id") or ""
    title = h('<a href="/runs/{rid}">{name}</a>', rid=rid, name=a["name"]) if rid else a["name"]
    return h('<article class="attempt{win}" data-attempt="{name}"><h3>{title}{crown}</h3>'
             '<dl><dt>state</dt><dd>{state}</dd><dt>model</dt><dd>{model}{fallback}</dd><dt>agent</dt><dd>{agent}</dd>'
             '<dt>check</dt><dd>{check}</dd><dt>judge</dt><dd>{judge}<small>{jr}</small></dd>'
             '<dt>place</dt><dd>{place} <small>{why}</small></dd>'
             '<dt>+/−</dt><dd><span class="add">+{added}</span> <span class="del">−{removed}</span></dd>'
             '<dt>tokens</dt><dd>{tokens}</dd><dt>cost</dt><dd>{cost}</dd><dt>time</dt><dd>{time}</dd></dl>'
             '{error}<p><a href="/runs/{race}/diff?{q}">diff</a> {merge}</p></article>',
             win=" winner" if a["name"] == winner else "", name=a["name"], title=title,
             crown=Safe(' <span class="crown">winner</span>') if a["name"] == winner else "",
             state=badge(a.get("status") or "pending"), model=a.get("model") or "default",
             fallback=h(" → {f}", f=a["fallback_used"]) if a.get("fallback_used") else "", agent=a.get("agent", ""),
             check=check_cell, judge=judge, jr=a.get("judge_reasons") or "", place=place, why=why,
             added=a.get("added", 0), removed=a.get("removed", 0), tokens=f"{tokens:,}",
             cost=money(a.get("cost_usd"), tokens, metered=not a.get("external")),
             time=duration(a.get("seconds") or 0.0),
             error=h('<pre class="error">{e}</pre>', e=a["error"]) if a.get("error") else "",
             race=race["id"], q=urlencode({"attempt": a["name"]}), merge=merge)


def _summary(result: dict[str, Any]) -> Safe:
    parts = []
    selection = result.get("selection") or {}
    if selection:
        parts.append(h("<p>selected by <b>{s}</b>: {r}</p>", s=selection.get("strategy", ""),
                       r=selection.get("reason", "")))
    if result.get("merged"):
        parts.append(h('<p class="merged">merged {w} into {b} at <code>{c}</code></p>', w=result.get("winner"),
                       b=result.get("base_branch"), c=(result["merged"] or "")[:10]))
    if result.get("merge_error"):
        parts.append(h('<p class="error">not merged: {e}</p>', e=result["merge_error"]))
    parts += [h('<p class="note">{n}</p>', n=n) for n in result.get("notes", [])]
    return join(parts)


def diff_html(diff: str) -> Safe:
    lines = diff.splitlines()
    shown = lines[:MAX_DIFF_LINES]

    def cls(line: str) -> str:
        if line.startswith(("+++", "---")):
            return "file"
        return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")

    body = join(h('<span class="{c}">{l}</span>\n', c=cls(line), l=line) for line in shown)
    more = h("\n… {n} more lines", n=len(lines) - MAX_DIFF_LINES) if len(lines) > MAX_DIFF_LINES else ""
    return h('<pre class="diff">{b}{more}</pre>', b=body or "(empty diff)", more=more)


def diff_body(race: dict[str, Any], names: list[str]) -> Safe:
    panes = join(h('<div class="pane"><h3>{n}</h3>{d}</div>', n=n, d=diff_html(_data.attempt_diff(race, n)))
                 for n in names)
    return h('<h1>race <a href="/runs/{id}">{id}</a>: {what}</h1><div class="panes n{count}">{panes}</div>',
             id=race["id"], what=" vs ".join(names), count=len(names), panes=panes)
