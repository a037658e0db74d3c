"""A fan-out's page: its plan while it waits for approval, then its slices side by side (proof before and
after, the check after merging, files touched against planned, spend, the worker's summary) and the
lead's report. The same components as the race board."""

from __future__ import annotations

from typing import Any

from ._html import Safe, h, join
from ._layout import action, badge, duration, money, table


def board(run: dict[str, Any]) -> Safe:
    result, meta = run["result"], run["meta"]
    if not result or not result.get("slices"):
        plan = meta.get("plan") or []
        if not plan:
            return Safe("")
        rows = [[s["id"], s.get("title", ""), s.get("model") or "default", ", ".join(s.get("files", [])),
                 s.get("proof", "")] for s in plan]
        said = "waits for your approval" if meta.get("state") == "awaiting approval" else meta.get("state", "")
        return h('<section class="board"><h2>plan <small>{said}</small></h2>{t}</section>', said=said,
                 t=table(["slice", "title", "model", "files", "proof"], rows))
    merge = ""
    if run["meta"].get("pick") == "manual" and not result.get("merged") and result.get("integration_branch"):
        merge = action(f"/runs/{run['id']}/merge", "merge the integration branch",
                       confirm=f"Merge {result['integration_branch']}?")
    cards = join(_slice(s) for s in result["slices"])
    report = h('<p class="report"><b>lead:</b> {r}</p>', r=result["report"]) if result.get("report") else ""
    notes = join(h('<p class="note">{n}</p>', n=n) for n in result.get("notes", []))
    return h('<section class="board"><h2>slices</h2>{report}{notes}<div class="columns">{cards}</div>{merge}</section>',
             report=report, notes=notes, cards=cards, merge=merge)


def _mark(check: dict[str, Any] | None) -> str:
    return "—" if not check else ("pass" if check.get("passed") else "fail")


def _slice(s: dict[str, Any]) -> Safe:
    touched, planned = set(s.get("files_touched") or []), set(s.get("files_planned") or [])
    return h('<article class="attempt" data-slice="{id}"><h3>{id}</h3><p>{title}</p><dl>'
             '<dt>state</dt><dd>{state}</dd><dt>model</dt><dd>{model}</dd>'
             '<dt>proof</dt><dd>{before} → {after}</dd><dt>merged</dt><dd>{check}</dd>'
             '<dt>files</dt><dd>{hit}/{planned}{extra}</dd>'
             '<dt>+/−</dt><dd><span class="add">+{added}</span> <span class="del">−{removed}</span></dd>'
             '<dt>tokens</dt><dd>{tokens}</dd><dt>cost</dt><dd>{cost}</dd><dt>time</dt><dd>{time}</dd></dl>'
             '{why}<pre class="summary">{summary}</pre></article>',
             id=s["id"], title=s.get("title", ""), state=badge(s.get("status", "?")), model=s.get("model") or "default",
             before=_mark(s.get("proof_before")), after=_mark(s.get("proof_after")),
             check=_mark(s.get("check_after_merge") or s.get("check")), hit=len(touched & planned),
             planned=len(planned), extra=f" +{len(touched - planned)} unplanned" if touched - planned else "",
             added=s.get("added", 0), removed=s.get("removed", 0), tokens=f"{s.get('tokens', 0):,}",
             cost=money(s.get("cost_usd"), s.get("tokens", 0)), time=duration(s.get("seconds") or 0.0),
             why=h('<p class="error">{w}</p>', w=s.get("merge_reason") or s.get("error"))
             if s.get("merge_reason") or s.get("error") else "", summary=s.get("summary") or "")
