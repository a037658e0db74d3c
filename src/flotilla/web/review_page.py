"""A review's page: each round's findings (severity, confidence, file:lines, title, blocking or not, and
the status the finding has now), the fixes between rounds, the verdict and why the loop ended, the cost
per role, and the branch's diff. ``rounds`` and ``branch_diff`` are the pipeline page's too (its review
stage is the same findings loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._html import Safe, h, join
from ._layout import action, badge, money, table
from .race_page import diff_html


def board(run: dict[str, Any]) -> Safe:
    result, meta = run["result"] or {}, run["meta"]
    loop = result if result else {"rounds": meta.get("rounds") or [], "findings": []}
    cost = result.get("cost_usd") or {}
    head = h('<p class="verdict">{ended} <b>{why}</b> · final verdict: {verdict}</p>',
             ended=badge(result["ended"]) if result else badge("reviewing"), why=result.get("reason", ""),
             verdict=result.get("verdict") or (loop["rounds"][-1]["verdict"] if loop["rounds"] else "none yet"))
    roles = table(["role", "model", "cost"], [
        ["writer", result.get("writer") or meta.get("writer") or "none", money(cost.get("writer")) if result else "—"],
        ["reviewer", result.get("reviewer") or meta.get("reviewer", ""), money(cost.get("reviewer")) if result else "—"]],
        cls="roles")
    notes = join(h('<p class="note">{n}</p>', n=n) for n in result.get("notes") or meta.get("warnings") or [])
    return h('<section class="board review"><h2>review</h2>{head}{roles}{notes}{rounds}{merge}{diff}</section>',
             head=head, roles=roles, notes=notes, rounds=rounds(loop), merge=merge_button(run), diff=branch_diff(run))


def rounds(loop: dict[str, Any]) -> Safe:
    """One block per round: its verdict, what it resolved or withdrew, its findings with their status
    now (the ledger's, once the loop is done), and the fixes that followed it."""
    final = {f["id"]: f for f in loop.get("findings") or []}
    blocks = []
    for row in loop.get("rounds") or []:
        closed = join(h(" · {k}: {ids}", k=k, ids=", ".join(row[k])) for k in ("resolved", "withdrawn") if row.get(k))
        cells = [[f["severity"], f"{f['confidence']:.2f}", h("<code>{f}:{a}-{b}</code>", f=f["file"], a=f["line_start"],
                                                              b=f["line_end"]),
                  f["title"], "blocking" if f.get("blocking") else "advisory", _status(final.get(f["id"], f))]
                 for f in row.get("findings") or []]
        listed = table(["severity", "confidence", "where", "title", "blocks", "status"], cells, cls="findings") if cells \
            else h('<p class="empty">no findings</p>')
        fixes = join(h('<p class="fix">fix by {agent} ({model}): {status}{check}</p>', agent=x["agent"],
                       model=x.get("model") or "default", status=badge(x["status"]),
                       check=_check(x.get("check"))) for x in row.get("fixes") or [])
        blocks.append(h('<article class="round" data-round="{n}"><h3>round {n}: {verdict}<small>{closed}</small></h3>'
                        '{listed}{fixes}</article>', n=row["round"], verdict=row["verdict"], closed=closed,
                        listed=listed, fixes=fixes))
    return join(blocks) if blocks else h('<p class="empty">no review round yet</p>')


def _status(f: dict[str, Any]) -> str:
    said = f.get("status", "open") + (f" in round {f['closed_round']}" if f.get("closed_round") else "")
    if f.get("proof"):
        said += ", proved by a test" if f["proof"].get("proven") else ", not proved"
    return said + (f", disputed: {f['dispute'][:80]}" if f.get("dispute") else "")


def _check(check: dict[str, Any] | None) -> str:
    return "" if not check else f", check {'passed' if check.get('passed') else 'failed'}"


def merge_button(run: dict[str, Any]) -> Safe:
    """``flotilla merge RUN`` of a finished review or pipeline: its branch into the base."""
    result = run["result"] or {}
    if not result.get("branch") or result.get("merged") or result.get("status") != "done" or \
            result.get("branch") == run["meta"].get("branch"):
        return Safe("")
    return action(f"/runs/{run['id']}/merge", f"merge {result['branch']}",
                  confirm=f"Merge {result['branch']} into {result.get('base_branch')}?")


def branch_diff(run: dict[str, Any]) -> Safe:
    """The branch's diff against the base it started from, while git still has its head or branch."""
    from ..workspaces import kept_diff, open_repo

    result, meta = run["result"] or {}, run["meta"]
    root = Path(meta.get("root") or "")
    if not result.get("base_commit") or not root.is_dir():
        return Safe("")
    text = kept_diff(open_repo(root), result["base_commit"], result.get("head"), result.get("branch"))
    if text is None:
        return Safe("")
    merged = h(' <span class="merged">merged at <code>{c}</code></span>', c=result["merged"][:10]) \
        if result.get("merged") else ""
    return h('<details class="branch-diff" open><summary>diff of {b}{merged}</summary>{d}</details>',
             b=result.get("branch") or "the branch", merged=merged, d=diff_html(text))
