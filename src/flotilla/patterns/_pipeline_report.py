"""A pipeline's report as plain text: the plan and its approval, each stage, the review, the notes."""

from __future__ import annotations

from typing import Any

from ._review_report import findings_lines


def render(result: dict[str, Any]) -> str:
    lines = [f"pipeline {result['pipeline_id']} ({result['name']}): {result['status']}: {result['reason']}"]
    plan = result.get("plan")
    if plan:
        lines += [f"plan by {plan['stage']} (sha256 {plan['sha256'][:12]}), files: {', '.join(plan['files']) or 'none'}",
                  *("  " + line for line in plan["text"].strip().splitlines())]
    for a in result.get("approvals", []):
        said = a.get("note") or a.get("reason") or ""
        lines.append(f"{'approved' if a['approved'] else 'rejected'} after {a['after']}" + (f": {said}" if said else ""))
    for row in result.get("stages", []):
        cost = f"${row['cost_usd']:.4f}" if row.get("cost_usd") is not None else "?"
        lines.append(f"{row['stage']} ({row['agent']}, {row['model'] or 'default'}): {row['status']}, "
                     f"{len(row['files'])} files, {cost}" + (f" — {row['summary'].splitlines()[0]}" if row["summary"] else ""))
    if result.get("review"):
        loop = result["review"]
        lines.append(f"review: {loop['ended']}: {loop['reason']}")
        lines += ["  " + line for line in findings_lines(loop)]
    if result.get("branch"):
        lines.append(f"branch: {result['branch']}")
    if result.get("cost_usd") is not None:
        lines.append(f"cost: ${result['cost_usd']:.4f}")
    return "\n".join(lines + [f"note: {n}" for n in result.get("notes", [])])


def waiting(result: dict[str, Any]) -> str:
    """What a person sees when the pipeline stops at its gate."""
    rid = result["pipeline_id"]
    plan = result.get("plan") or {}
    return "\n".join([f"pipeline {rid}: {result['reason']}", *plan.get("text", "").strip().splitlines(),
                      f"files: {', '.join(plan.get('files', [])) or 'none'}",
                      f"waiting: `flotilla approve {rid} [--note …]` or `flotilla reject {rid} --reason …` "
                      "(from any shell; this process may exit)"])
