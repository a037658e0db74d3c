"""A findings loop's report as plain text: how it ended, each round's findings with their status now,
the cost per role. The CLI prints it; ``flotilla show`` of a review or a pipeline too."""

from __future__ import annotations

from typing import Any


def findings_lines(loop: dict[str, Any]) -> list[str]:
    """One block per round: the verdict, what was resolved, and each finding reported that round,
    with its severity, confidence, place, whether it blocks and its final status."""
    final = {f["id"]: f for f in loop.get("findings", [])}
    lines = []
    for row in loop.get("rounds", []):
        closed = "; ".join(f"{k} {', '.join(row[k])}" for k in ("resolved", "withdrawn") if row.get(k))
        lines.append(f"round {row['round']}: {row['verdict']}" + (f" ({closed})" if closed else ""))
        for f in row["findings"]:
            now = final.get(f["id"], f)
            status = now["status"] + (f" in round {now['closed_round']}" if now.get("closed_round") else "")
            if now.get("proof"):
                p = now["proof"]
                status += ", proved by a test" if p["proven"] else (
                    f", not proved (failed before: {'yes' if p['failed_before'] else 'no'}, "
                    f"passed after: {'yes' if p['passed_after'] else 'no'})")
            if now.get("dispute"):
                status += f", the writer disputed it: {now['dispute'][:60]}"
            lines.append(f"  {f['severity']} {f['confidence']:.2f}  {f['id']:<12} {f['file']}:{f['line_start']}-"
                         f"{f['line_end']}  {f['title'][:60]}  {'blocking' if f['blocking'] else 'advisory'}, {status}")
        for fix in row.get("fixes", []):
            check = fix.get("check")
            said = f", check {'passed' if check['passed'] else 'failed'}" if check else ""
            lines.append(f"  fix by {fix['agent']} ({fix['model'] or 'default'}): {fix['status']}{said}")
    return lines


def render(result: dict[str, Any]) -> str:
    cost = result.get("cost_usd") or {}
    head = [f"review {result['review_id']}: {result['ended']}: {result['reason']}",
            f"writer {result.get('writer') or 'none'} (${cost.get('writer', 0):.4f}) · reviewer {result['reviewer']} "
            f"(${cost.get('reviewer', 0):.4f})"]
    write = result.get("write")
    if write and write.get("check"):
        head.append(f"the writer's check: {'passed' if write['check']['passed'] else 'failed'}")
    tail = [f"final verdict: {result.get('verdict') or 'none'}"]
    if result.get("branch"):
        tail.append(f"branch: {result['branch']}")
    return "\n".join(head + findings_lines(result) + tail + [f"note: {n}" for n in result.get("notes", [])])
