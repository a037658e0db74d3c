"""A review's findings: the ``submit_review`` tool, the ``Finding`` record, what blocks, and when a
findings loop ends.

Everything here is a pure function of its inputs, so that a resumed durable loop re-derives the same
answers from the recorded reviews. The reviewer answers only through ``submit_review`` (validated;
invalid input goes back to it with the errors, bounded by ``agents.submit``). From the second round
on it must account for every finding still open: ``resolved`` (the fix worked), ``withdrawn`` (it was
wrong), or reported again under the same id (still open); a finding it forgets is an error it must fix.

A finding **blocks** at or above a severity and a confidence (``[review] block_severity`` and
``block_confidence``, P1 and 0.6 by default); the others are reported and do not hold the loop. The
loop ends (``decide``): ``clean`` (verdict clean, nothing blocking open), ``nothing blocking``
(changes_needed, but only below the threshold), ``not converging`` (a round whose blocking findings
are new while the earlier ones come back unresolved, or a new finding on the lines the previous fix
wrote: the reviewer attacking its own earlier advice), or ``rounds`` (the cap).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..agents.submit import Submission, kind

SEVERITIES = ("P0", "P1", "P2", "P3")
STATUSES = ("open", "fixed", "disputed", "withdrawn")
OPEN = ("open", "disputed")
"""Statuses the reviewer must still account for (a disputed finding waits for its answer)."""
FINDING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


class ReviewConfig(BaseModel):
    """The ``[review]`` section of flotilla.toml."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(3, ge=1)
    """Review rounds at most (each after the first follows a fix)."""
    block_severity: str = Field("P1", pattern="^P[0-3]$")
    """Findings this severe or worse block the loop (P0 is the worst)."""
    block_confidence: float = Field(0.6, ge=0.0, le=1.0)
    """…when the reviewer is at least this confident of them."""


def review_config(settings: Any) -> ReviewConfig:
    return settings.section("review", ReviewConfig) if settings is not None else ReviewConfig()


@dataclass
class Finding:
    """One problem a reviewer reported, with the round it was first raised and its status now."""

    id: str
    severity: str
    confidence: float
    file: str
    line_start: int
    line_end: int
    title: str
    body: str = ""
    suggested_fix: str = ""
    round: int = 1
    status: str = "open"
    """open, fixed (the reviewer says resolved), disputed, withdrawn (the reviewer took it back)."""
    blocking: bool = False
    closed_round: int | None = None
    returned: int = 0
    """Rounds after the first in which the reviewer reported it again, still open."""
    dispute: str = ""
    """Why the writer thinks it is wrong (``--prove``: it disputes instead of proving a fix)."""
    proof: dict[str, Any] | None = None
    """``--prove``: the writer's test command and whether it failed before the fix and passed after."""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_FINDING_SCHEMA = {
    "type": "object", "required": ["id", "severity", "confidence", "file", "line_start", "line_end", "title", "body"],
    "properties": {
        "id": {"type": "string", "description": "Short unique id (letters, digits, - _ .); reuse it to report the "
                                                "same finding again in a later round."},
        "severity": {"type": "string", "enum": list(SEVERITIES), "description": "P0 worst … P3 nit."},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "file": {"type": "string", "description": "Repository-relative path."},
        "line_start": {"type": "integer", "minimum": 1}, "line_end": {"type": "integer", "minimum": 1},
        "title": {"type": "string"}, "body": {"type": "string"}, "suggested_fix": {"type": "string"}}}

REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["verdict", "findings"],
    "properties": {
        "verdict": {"type": "string", "enum": ["clean", "changes_needed"]},
        "findings": {"type": "array", "items": _FINDING_SCHEMA,
                     "description": "Prefer no finding over a weak one."},
        "resolved": {"type": "array", "items": {"type": "string"},
                     "description": "Ids of earlier findings the new diff fixes."},
        "withdrawn": {"type": "array", "items": {"type": "string"},
                      "description": "Ids of earlier findings you now think were wrong."}}}


def review_errors(review: dict[str, Any], open_ids: list[str], closed_ids: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """What is wrong with a submitted review, each naming the field and the fix; empty when valid.
    ``open_ids``: the earlier findings still open, which the review must account for; ``closed_ids``
    the earlier ones closed (fixed or withdrawn), whose ids may not be reused."""
    errors: list[str] = []
    if review.get("verdict") not in ("clean", "changes_needed"):
        errors.append("`verdict` must be \"clean\" or \"changes_needed\"")
    found = review.get("findings")
    if not isinstance(found, list):
        return errors + ["`findings` must be a list (empty when there are none)"]
    seen: set[str] = set()
    for n, f in enumerate(found, 1):
        if not isinstance(f, dict):
            errors.append(f"finding {n} must be an object")
            continue
        where = f"finding {n}" + (f" ({f['id']!r})" if isinstance(f.get("id"), str) else "")
        fid = f.get("id")
        if not isinstance(fid, str) or not FINDING_ID.match(fid):
            errors.append(f"{where}: `id` must be letters, digits, - _ . (at most 40)")
        elif fid in seen:
            errors.append(f"{where}: `id` is used twice; ids must be unique")
        elif fid in closed_ids:
            errors.append(f"{where}: `id` {fid!r} names an earlier finding already closed; give a new problem a new id")
        seen.add(fid if isinstance(fid, str) else "")
        if f.get("severity") not in SEVERITIES:
            errors.append(f"{where}: `severity` must be one of {', '.join(SEVERITIES)}")
        c = f.get("confidence")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c <= 1:
            errors.append(f"{where}: `confidence` must be a number from 0 to 1")
        for key in ("file", "title"):
            if not isinstance(f.get(key), str) or not f[key].strip():
                errors.append(f"{where}: `{key}` must be a non-empty string")
        if isinstance(f.get("file"), str) and (f["file"].startswith("/") or ".." in f["file"].split("/")):
            errors.append(f"{where}: `file` must be a relative path inside the repository")
        a, b = f.get("line_start"), f.get("line_end")
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in (a, b)) or b < a:  # type: ignore[operator]
            errors.append(f"{where}: `line_start` and `line_end` must be lines (1 or more), start ≤ end")
    accounted = set(seen)
    for key in ("resolved", "withdrawn"):
        ids = review.get(key, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            errors.append(f"`{key}` must be a list of finding ids")
            continue
        for i in ids:
            if i not in open_ids:
                errors.append(f"`{key}` names {i!r}, which is not an open earlier finding "
                              f"(open: {', '.join(open_ids) or 'none'})")
        accounted |= set(ids)
    missing = [i for i in open_ids if i not in accounted]
    if missing:
        errors.append(f"say what became of the earlier findings {', '.join(missing)}: list each in `resolved` "
                      "or `withdrawn`, or report it again with the same id if it is still open")
    return errors


def submission(open_ids: list[str], closed_ids: list[str] = (), max_attempts: int = 3) -> Submission:  # type: ignore[assignment]
    return Submission(
        name="submit_review", max_attempts=max_attempts,
        description=("Submit your review of the diff: a verdict and findings (each with a priority P0-P3, a "
                     "confidence 0-1, a file and a short line range). Call it once, when you are done."),
        input_schema=REVIEW_SCHEMA, validate=lambda review: review_errors(review, open_ids, closed_ids))


def blocks(f: dict[str, Any] | Finding, config: dict[str, Any]) -> bool:
    sev, conf = (f.severity, f.confidence) if isinstance(f, Finding) else (f["severity"], f["confidence"])
    return SEVERITIES.index(sev) <= SEVERITIES.index(config["block_severity"]) and conf >= config["block_confidence"]


def apply_review(ledger: list[Finding], round_n: int, review: dict[str, Any], config: dict[str, Any]) -> list[Finding]:
    """The ledger after round ``round_n``'s review: resolved and withdrawn closed, re-reported ones
    kept open (their text updated), new ones added with their round. With ``config["prove"]``, a
    finding the reviewer calls resolved is fixed only when a test proved the fix; else it stays open."""
    by_id = {f.id: f for f in ledger}
    for key, status in (("resolved", "fixed"), ("withdrawn", "withdrawn")):
        for i in review.get(key, []):
            f = by_id[i]
            if status == "fixed" and config.get("prove") and not (f.proof or {}).get("proven"):
                f.status, f.note = "open", "resolved by the reviewer, but no test proved the fix"
                continue
            f.status, f.closed_round = status, round_n
    for raw in review["findings"]:
        data = {k: raw.get(k, "") for k in ("id", "severity", "confidence", "file", "line_start", "line_end", "title",
                                             "body", "suggested_fix")}
        earlier = by_id.get(raw["id"])
        if earlier is not None and earlier.status in OPEN:
            for k, v in data.items():
                setattr(earlier, k, v)
            earlier.status, earlier.returned = "open", earlier.returned + 1
        else:
            by_id[raw["id"]] = Finding(**data, round=round_n)
        by_id[raw["id"]].blocking = blocks(by_id[raw["id"]], config)
    order = [f.id for f in ledger] + [r["id"] for r in review["findings"] if r["id"] not in {f.id for f in ledger}]
    return [by_id[i] for i in dict.fromkeys(order)]


def decide(round_n: int, review: dict[str, Any], ledger: list[Finding], rounds: int,
           fixed_lines: dict[str, list[tuple[int, int]]]) -> tuple[str | None, str]:
    """Whether the loop ends after this round's review, and why. ``fixed_lines``: the lines (by file)
    the previous fix wrote, empty in round 1."""
    blocking = [f for f in ledger if f.status in OPEN and f.blocking]
    if not blocking:
        if review["verdict"] == "clean":
            return "clean", f"round {round_n}: the reviewer is clean, nothing blocking"
        return "nothing blocking", f"round {round_n}: changes_needed, but no finding reaches the blocking threshold"
    new = [f for f in blocking if f.round == round_n]
    returned = [f for f in blocking if f.round < round_n]
    resolved = [f for f in ledger if f.closed_round == round_n and f.status == "fixed"]
    if round_n > 1:
        for f in new:
            for a, b in fixed_lines.get(f.file, []):
                if f.line_start <= b and a <= f.line_end:
                    return "not converging", (f"round {round_n}: new finding {f.id} is on {f.file}:{a}-{b}, lines "
                                              "the previous fix wrote (the reviewer reverses its own advice)")
        if new and returned and not resolved:
            return "not converging", (f"round {round_n}: blocking findings are new ({', '.join(f.id for f in new)}) "
                                      f"while earlier ones keep returning ({', '.join(f.id for f in returned)})")
    if round_n >= rounds:
        return "rounds", f"{rounds} rounds reached with {len(blocking)} blocking finding(s) open"
    return None, f"round {round_n}: {len(blocking)} blocking finding(s) to fix"


FIX_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["proofs"],
    "properties": {
        "proofs": {"type": "array", "items": {"type": "object", "required": ["finding", "command"], "properties": {
            "finding": {"type": "string"},
            "command": {"type": "string", "description": "Runs the test you added for it, at the repository root; "
                                                         "it must fail without your fix and pass with it."}}}},
        "disputed": {"type": "array", "items": {"type": "object", "required": ["finding", "reason"], "properties": {
            "finding": {"type": "string"}, "reason": {"type": "string"}}}}}}


def fix_errors(fix: dict[str, Any], blocking: list[str]) -> list[str]:
    """What is wrong with a writer's account of its fixes: every blocking finding proved or disputed."""
    errors, said = [], []
    for key, field in (("proofs", "command"), ("disputed", "reason")):
        entries = fix.get(key, [])
        if not isinstance(entries, list):
            errors.append(f"`{key}` must be a list")
            continue
        for e in entries:
            fid = e.get("finding") if isinstance(e, dict) else None
            if fid not in blocking:
                errors.append(f"`{key}` names {fid!r}, which is not a finding to fix ({', '.join(blocking)})")
            elif not isinstance(e.get(field), str) or not e[field].strip():
                errors.append(f"`{key}` for {fid}: `{field}` must be a non-empty string")
            said.append(fid)
    missing = [b for b in blocking if b not in said]
    if missing:
        errors.append(f"give a proof (a test command) or a dispute for {', '.join(missing)}")
    return errors


@kind("fix_proofs")
def fix_submission(blocking: list[str]) -> Submission:
    return Submission(name="submit_fix", input_schema=FIX_SCHEMA, validate=lambda fix: fix_errors(fix, blocking),
                      description=("When you are done: for each finding, the command of the test you added that "
                                   "fails without your fix and passes with it, or why you dispute the finding."))


def apply_fix(ledger: list[Finding], fix: dict[str, Any] | None, proofs: list[dict[str, Any]]) -> list[Finding]:
    """The ledger after a proved fix: each finding's proof as run, disputed ones marked."""
    by_id = {f.id: f for f in ledger}
    for p in proofs:
        by_id[p["finding"]].proof = p
    for d in (fix or {}).get("disputed", []):
        by_id[d["finding"]].status, by_id[d["finding"]].dispute = "disputed", d["reason"]
    return ledger


TEST_PATH = re.compile(r"(^|/)(tests?/|test_[^/]*$|[^/]*_test\.[a-z]+$|[^/]*\.(test|spec)\.[a-z]+$)")


HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def written_lines(diff_u0: str) -> dict[str, list[tuple[int, int]]]:
    """The new-side line ranges of a ``git diff -U0``, by file (what a fix wrote)."""
    out: dict[str, list[tuple[int, int]]] = {}
    path = None
    for line in diff_u0.splitlines():
        if line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else None
        elif path and (m := HUNK.match(line)):
            start, count = int(m.group(1)), int(m.group(2) or 1)
            if count:
                out.setdefault(path, []).append((start, start + count - 1))
    return out
