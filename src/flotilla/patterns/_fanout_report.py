"""A fan-out's report: one row per slice, a short summary of each, and the lead's closing word.

The lead never sees a worker's transcript: after the merge queue it is asked once more, in its own
conversation, with the slice summaries (at most ``SUMMARY_LINES`` lines each, and the key files)
and nothing else. So however much the workers read, the lead's context grows by the summaries only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import FlotillaError
from ..events import FanOut
from ..messages import Message, MessagesRequest
from ..workspaces import open_repo
from ..workspaces._git import out

SUMMARY_LINES = 10
REPORT_PROMPT = """The workers have finished. Here is each slice's outcome and summary (this is all you get):

{summaries}

Write the report for the person who gave you the job: in a few lines, what was done, what was not, and
what they should look at first."""


def slice_row(job: dict[str, Any], session: Any, unit: Any) -> dict[str, Any]:
    """A slice's row from its unit's result: proof after, files touched against planned, spend, summary."""
    touched: list[str] = []
    if unit.commit:
        root = open_repo(Path(job["root"])).root
        touched = [p for p in out(root, "diff", "--name-only", job["base_commit"], unit.commit).splitlines() if p]
    return {"status": unit.status, "proof_after": unit.check, "error": unit.error, "branch": unit.branch,
            "commit": unit.commit, "added": unit.added, "removed": unit.removed, "files_touched": touched,
            "tokens": unit.tokens, "cost_usd": unit.cost_usd, "started_at": unit.started_at,
            "seconds": unit.seconds,
            "summary": summary_of(session, unit.run_id)}


def summary_of(session: Any, run_id: str) -> str:
    """The worker's final message, at most ``SUMMARY_LINES`` lines."""
    record = session.store.get_run(run_id)
    text = ((record.get("result") or {}).get("text") or "").strip()
    lines = text.splitlines()
    return "\n".join(lines[:SUMMARY_LINES]) + ("\n…" if len(lines) > SUMMARY_LINES else "")


def summaries(slices: list[dict[str, Any]], rows: dict[str, dict[str, Any]]) -> str:
    parts = []
    for s in slices:
        row = rows.get(s["id"], {})
        head = f"### {s['id']}: {s['title']} [{row.get('status', 'not run')}]"
        files = ", ".join(row.get("files_touched") or []) or "none"
        parts.append(f"{head}\nkey files: {files}\n{row.get('summary') or row.get('error') or ''}".rstrip())
    return "\n\n".join(parts)


async def lead_report(session: Any, job: dict[str, Any], slices: list[dict[str, Any]],
                      rows: dict[str, dict[str, Any]]) -> str:
    """The lead's closing paragraph: its own conversation plus the summaries, one call, within the budget."""
    from ..agents.wiring import stacked_model

    fid, lead_run = job["fanout_id"], job["lead_run_id"]
    transcript = [Message.model_validate(e["message"]) for e in session.store.events(lead_run, kind="MessageAdded")]
    transcript.append(Message(role="user", content=REPORT_PROMPT.format(summaries=summaries(slices, rows))))
    name = session.catalog.resolve(job["lead_model"])
    model = stacked_model(session.build_model, name, [], catalog=session.catalog,
                          sink=FanOut(session.store, session.observer(fid)), run_id=lead_run, role="lead",
                          meter=session.meter(fid), budget_usd=job["budget_usd"])
    try:
        response = await model.request(MessagesRequest(model=name, messages=transcript, max_tokens=1024))
    except FlotillaError as exc:  # the budget spent, a provider down: the report stands without it
        return f"(the lead could not write its report: {exc})"
    return response.text().strip()


def render(result: dict[str, Any]) -> str:
    """The report as text: the table, each slice's summary, the notes and the lead's word."""
    rows = [("slice", "model", "status", "proof before→after", "check", "files touched/planned", "+/-",
             "tokens", "cost", "time")]
    for s in result["slices"]:
        before = _mark(s.get("proof_before"))
        after = _mark(s.get("proof_after"))
        check = _mark(s.get("check_after_merge") or s.get("check"))
        touched = s.get("files_touched") or []
        planned = s.get("files_planned") or []
        rows.append((s["id"], s.get("model") or "default", s.get("status", "?"), f"{before}→{after}", check,
                     f"{len(set(touched) & set(planned))}/{len(planned)}" + (f" +{len(set(touched) - set(planned))}"
                                                                             if set(touched) - set(planned) else ""),
                     f"+{s.get('added', 0)}/-{s.get('removed', 0)}", str(s.get("tokens", 0)),
                     f"${s['cost_usd']:.4f}" if s.get("cost_usd") is not None else "?",
                     f"{s.get('seconds', 0):.1f}s"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for s in result["slices"]:
        lines += ["", f"{s['id']}: {s['title']}"]
        if s.get("joined"):
            lines.append(f"  joined from {', '.join(s['joined'])} (their files overlap)")
        if s.get("merge_reason") or s.get("error"):
            lines.append(f"  why: {s.get('merge_reason') or s.get('error')}")
        if s.get("files_touched"):
            lines.append(f"  key files: {', '.join(s['files_touched'])}")
        lines += [f"  {line}" for line in (s.get("summary") or "").splitlines()]
    lines += [""] + [f"note: {n}" for n in result.get("notes", [])]
    if result.get("report"):
        lines += ["", "lead: " + result["report"]]
    lines.append(f"{result['status']}: {result['reason']} · total ${result.get('cost_usd', 0):.4f}")
    return "\n".join(lines)


def _mark(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    return "pass" if check.get("passed") else "fail"


def as_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, default=str)
