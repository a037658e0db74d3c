"""A fan-out's plan: the ``submit_plan`` tool the lead answers with, its validation, and the overlap rule.

The lead's plan is data the runtime checks, not prose: every slice needs an id, a title,
instructions, the files it expects to touch and a proof command; ids are unique; there are at most
``max_slices``. Slices whose ``files`` overlap would fight in the merge queue, so before any worker
starts they are **merged into one slice** (one worker does both, its proof is both proofs): the
plan records which slices were joined and why, and the table shows it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..agents.submit import Submission

SLICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["slices"],
    "properties": {"slices": {"type": "array", "items": {
        "type": "object", "required": ["id", "title", "instructions", "files", "proof"],
        "properties": {
            "id": {"type": "string", "description": "Short unique name: letters, digits, - _ . (it names a branch)."},
            "title": {"type": "string", "description": "One line."},
            "instructions": {"type": "string", "description": "Everything the worker needs; it sees nothing else."},
            "files": {"type": "array", "items": {"type": "string"},
                      "description": "Repository-relative paths the slice is expected to change."},
            "proof": {"type": "string", "description": "A shell command that fails now and passes once the slice "
                                                       "is done, typically one test."}}}}},
}


@dataclass
class Slice:
    """One independent piece of the job, as the lead planned it (after overlap merging)."""

    id: str
    title: str
    instructions: str
    files: list[str]
    proof: str
    joined: list[str] = field(default_factory=list)
    """The planned slices this one was merged from because their files overlap (empty: none)."""
    model: str = ""
    run_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan_errors(plan: dict[str, Any], max_slices: int) -> list[str]:
    """What is wrong with a submitted plan, each naming the slice and field; empty when it is valid."""
    slices = plan.get("slices")
    if not isinstance(slices, list) or not slices:
        return ["`slices` must be a non-empty list of slices"]
    errors = []
    if len(slices) > max_slices:
        errors.append(f"{len(slices)} slices planned; at most {max_slices} are allowed: join related work")
    seen: set[str] = set()
    for n, raw in enumerate(slices, 1):
        where = f"slice {n}"
        if not isinstance(raw, dict):
            errors.append(f"{where} must be an object")
            continue
        sid = raw.get("id")
        if isinstance(sid, str) and sid:
            where = f"slice {n} ({sid!r})"
            if not SLICE_ID.match(sid):
                errors.append(f"{where}: `id` may hold only letters, digits, - _ . (at most 40)")
            if sid in seen:
                errors.append(f"{where}: `id` is used twice; ids must be unique")
            seen.add(sid)
        for key in ("id", "title", "instructions", "proof"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                errors.append(f"{where}: `{key}` must be a non-empty string")
        files = raw.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) and f.strip() for f in files):
            errors.append(f"{where}: `files` must list the paths it will change (non-empty strings)")
        elif any(f.startswith("/") or ".." in f.split("/") for f in files):
            errors.append(f"{where}: `files` must be relative paths inside the repository")
    return errors


def submission(max_slices: int) -> Submission:
    return Submission(
        name="submit_plan",
        description=("Submit your plan: the job split into independent slices, each done by a worker who "
                     "sees only that slice. Call it once, when you have explored enough."),
        input_schema=PLAN_SCHEMA, validate=lambda plan: plan_errors(plan, max_slices))


def join_overlapping(raw: list[dict[str, Any]]) -> list[Slice]:
    """The slices to run: planned ones whose ``files`` overlap (directly or through another) become one."""
    groups: list[list[dict[str, Any]]] = []
    for planned in raw:
        files = {_norm(f) for f in planned["files"]}
        touching = [g for g in groups if files & {_norm(f) for p in g for f in p["files"]}]
        merged = [p for g in touching for p in g] + [planned]
        groups = [g for g in groups if g not in touching] + [merged]
    order = {p["id"]: n for n, p in enumerate(raw)}
    groups.sort(key=lambda g: min(order[p["id"]] for p in g))
    return [_one(sorted(g, key=lambda p: order[p["id"]])) for g in groups]


def _one(group: list[dict[str, Any]]) -> Slice:
    if len(group) == 1:
        p = group[0]
        return Slice(p["id"], p["title"], p["instructions"], list(p["files"]), p["proof"])
    files = list(dict.fromkeys(f for p in group for f in p["files"]))
    return Slice(id="+".join(p["id"] for p in group)[:40], title="; ".join(p["title"] for p in group),
                 instructions="\n\n".join(f"## {p['title']}\n{p['instructions']}" for p in group),
                 files=files, proof=" && ".join(f"({p['proof']})" for p in group), joined=[p["id"] for p in group])


def _norm(path: str) -> str:
    return path.strip().removeprefix("./")


def plan_table(slices: list[dict[str, Any]]) -> str:
    """The plan as a plain-text table (the CLI prints it; ``flotilla show`` too)."""
    rows = [("slice", "model", "files", "proof", "note")]
    for s in slices:
        note = f"joined {', '.join(s['joined'])}: files overlap" if s.get("joined") else ""
        rows.append((s["id"], s.get("model") or "default", ", ".join(s["files"])[:50], s["proof"][:40], note))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
