"""A pipeline's page: its stages in order with their state (a parallel group side by side, the gate after
its stage, the review stage's findings going to the stages that fix them), the plan (PLAN.md) with
Approve and Reject while it waits at its gate, each stage's files with those outside the approved plan
flagged, the review's rounds, the notes and the branch's diff. The same components as the race board."""

from __future__ import annotations

from typing import Any

from ._html import Safe, h, join
from ._layout import badge, money, run_link
from .review_page import branch_diff, merge_button, rounds


def board(run: dict[str, Any], store: Any) -> Safe:
    result, meta = run["result"] or {}, run["meta"]
    stages = meta.get("stages") or []
    rows = {r["stage"]: r for r in result.get("stages") or []}
    runs = _statuses(store, [s["run_id"] for s in stages])
    loop = result.get("review") or ({"rounds": meta["rounds"], "findings": []} if meta.get("rounds") else None)
    flow = join(_group(run, group, rows, runs, loop) for group in _groups(stages))
    head = h('<p class="verdict">{b} {why}</p>', b=badge(result["status"]), why=result.get("reason", "")) \
        if result else ""
    notes = join(h('<p class="note">{n}</p>', n=n) for n in result.get("notes") or [])
    review = h("<h2>review</h2>{r}", r=rounds(loop)) if loop else ""
    cost = h("<p>cost {c}</p>", c=money(result["cost_usd"])) if result.get("cost_usd") is not None else ""
    plan = plan_section(run)
    first, last = (plan, "") if meta.get("state") == "awaiting approval" else ("", plan)  # the question first
    return h('<section class="board pipeline"><h2>pipeline <small>{name}</small></h2>{head}{notes}{first}'
             '<ol class="stages">{flow}</ol>{last}{review}{cost}{merge}{diff}</section>', name=meta.get("name", ""),
             head=head, notes=notes, first=first, flow=flow, last=last, review=review, cost=cost,
             merge=merge_button(run), diff=branch_diff(run))


def _groups(stages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive stages of one ``group`` run at once: one step of the flow."""
    out: list[list[dict[str, Any]]] = []
    for s in stages:
        if s.get("group") and out and out[-1][0].get("group") == s["group"]:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _statuses(store: Any, run_ids: list[str]) -> dict[str, str]:
    if not run_ids:
        return {}
    marks = ",".join("?" * len(run_ids))
    return {r["id"]: r["status"] for r in store.execute(f"SELECT id, status FROM runs WHERE id IN ({marks})",
                                                         tuple(run_ids))}


def _group(run: dict[str, Any], group: list[dict[str, Any]], rows: dict[str, Any], runs: dict[str, str],
           loop: dict[str, Any] | None) -> Safe:
    cards = join(_stage(run, s, rows.get(s["name"]), runs.get(s["run_id"]), loop) for s in group)
    if len(group) > 1:
        cards = h('<div class="group"><p class="kind">parallel: {g}, each on its own branch, merged back</p>'
                  '<div class="columns">{c}</div></div>', g=group[0]["group"], c=cards)
    gate = _gate(run, group[-1]) if any(s.get("gate") for s in group) else ""
    return h("<li>{cards}{gate}</li>", cards=cards, gate=gate)


def _state(run: dict[str, Any], stage: dict[str, Any], row: dict[str, Any] | None, status: str | None,
           loop: dict[str, Any] | None) -> str:
    if row:
        return row["status"]
    if stage["kind"] == "plan" and (run["meta"].get("plan") or {}).get("stage") == stage["name"]:
        return "done"
    if stage["kind"] == "review" and loop:
        return loop.get("ended") or f"round {len(loop['rounds'])}"
    return status or ("not run" if run["result"] else "pending")


def _stage(run: dict[str, Any], stage: dict[str, Any], row: dict[str, Any] | None, status: str | None,
           loop: dict[str, Any] | None) -> Safe:
    row = row or {}
    outside = row.get("outside_plan") or []
    flag = h('<p class="flag">outside the approved plan: {f}</p>', f=", ".join(outside)) if outside else ""
    edge = h('<p class="edge">findings → {to}</p>', to=", ".join(stage["fix"])) if stage.get("fix") else ""
    files = h("<dt>files</dt><dd>{f}</dd>", f=", ".join(row["files"]) or "none") if "files" in row else ""
    cost = h("<dt>cost</dt><dd>{c}</dd>", c=money(row["cost_usd"])) if row.get("cost_usd") is not None else ""
    error = h('<p class="error">{e}</p>', e=row.get("merge_reason") or row.get("error")) \
        if row.get("merge_reason") or row.get("error") else ""
    summary = h('<pre class="summary">{s}</pre>', s=row["summary"]) if row.get("summary") else ""
    return h('<article class="attempt stage{out}" data-stage="{name}"><h3>{link} <small>{kind}</small></h3><dl>'
             '<dt>state</dt><dd>{state}</dd><dt>agent</dt><dd>{agent}</dd><dt>model</dt><dd>{model}</dd>{files}{cost}'
             '</dl>{flag}{edge}{error}{summary}</article>', out=" outside" if outside else "", name=stage["name"],
             link=run_link(stage["run_id"], stage["name"]) if status else stage["name"], kind=stage["kind"],
             state=badge(_state(run, stage, row or None, status, loop)), agent=stage["agent"],
             model=stage.get("model") or "default", files=files, cost=cost, flag=flag, edge=edge, error=error,
             summary=summary)


def _gate(run: dict[str, Any], stage: dict[str, Any]) -> Safe:
    meta, result = run["meta"], run["result"] or {}
    answers = [a for a in result.get("approvals") or [meta.get("approval") or {}] if a.get("after") == stage["name"]]
    if meta.get("state") == "awaiting approval" and meta.get("gate") == stage["name"]:
        said = h("<strong>waiting: approve or reject</strong>")
    elif answers:
        a = answers[-1]
        said = h("{what}{text}", what="approved" if a["approved"] else "rejected",
                 text=f": {a.get('note') or a.get('reason')}" if a.get("note") or a.get("reason") else "")
    else:
        said = h("{s}", s=("not asked (--yes)" if result.get("stages") else "never reached") if result
                 else "not reached yet")
    return h('<p class="gate" data-gate="{g}">gate after {g}: {said}</p>', g=stage["name"], said=said)


def plan_section(run: dict[str, Any]) -> Safe:
    """PLAN.md as the plan stage submitted it, with its files and hash; Approve and Reject while waiting."""
    meta = run["meta"]
    plan = meta.get("plan") or (run["result"] or {}).get("plan")
    if not plan:
        return Safe("")
    answer = Safe("")
    if meta.get("state") == "awaiting approval" and run["status"] == "running":
        rid = run["id"]
        answer = h('<div class="answer"><form method="post" action="/runs/{id}/approve" class="approve">'
                   '<label for="approve-note">note for the next stages (optional)</label>'
                   '<textarea id="approve-note" name="note" rows="2"></textarea><button type="submit">Approve</button>'
                   '</form><form method="post" action="/runs/{id}/reject" class="reject" data-confirm="{ask}">'
                   '<label for="reject-reason">reason</label><textarea id="reject-reason" name="reason" rows="2" '
                   'required></textarea><button type="submit" class="danger">Reject</button></form></div>',
                   id=rid, ask=f"Reject the plan and end pipeline {rid}? Nothing more is spent.")
    open_ = " open" if answer else ""
    return h('<section class="plan"><details{o}><summary>PLAN.md by {stage} · sha256 <code>{sha}</code> · files: {files}'
             '</summary><pre class="plan-text">{text}</pre></details>{answer}</section>', o=Safe(open_),
             stage=plan.get("stage", ""), sha=(plan.get("sha256") or "")[:12],
             files=", ".join(plan.get("files") or []) or "none", text=plan.get("text", ""), answer=answer)
