"""A ledger's files: ``features.json`` as data, ``PROGRESS.md`` rendered from it, and the guard.

The truth is the ledger's record in the run store (each feature with its ``passes``); the files are
its rendering in the repository, for the agents to read. Each feature's identity (id, name,
description, verify) is hashed when it enters the ledger; ``differences`` compares what a file holds
with the record, so that an edit by any means (a ``Bash`` ``sed``, a commit, a person) is found,
reported and reverted by writing the record again. Pure functions, apart from reading and writing
the two files.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..agents.submit import Submission

FEATURES, PROGRESS = "features.json", "PROGRESS.md"
IDENTITY = ("id", "name", "description", "verify")
FEATURE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
BLOCK_START = "<!-- flotilla:ledger:start (rendered by flotilla from features.json; edits here are replaced) -->"
BLOCK_END = "<!-- flotilla:ledger:end -->"
NOTES = "## Notes"
DENY = ("Edit(./features.json)",)
"""The permission rule every ledger agent runs under: its Write and Edit never touch the record."""

FEATURE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["id", "name", "description", "verify"],
    "properties": {
        "id": {"type": "string", "description": "Short unique name: letters, digits, - _ ."},
        "name": {"type": "string", "description": "One line."},
        "description": {"type": "string", "description": "What works when this feature is done."},
        "verify": {"type": "string", "description": "A shell command, run at the repository root, that passes "
                                                    "only when the feature works (it must fail now)."}}}


def submission(max_features: int, *, smoke_configured: bool) -> Submission:
    """The ``submit_features`` tool of the initializer."""
    props: dict[str, Any] = {"features": {"type": "array", "items": FEATURE_SCHEMA},
                             "smoke": {"type": "string", "description": "The smoke test: a shell command that "
                                       "passes when the project builds and starts (e.g. `sh init.sh`)."},
                             "current_state": {"type": "string", "description": "One paragraph: where things stand."}}
    return Submission(
        name="submit_features",
        description=("Submit the ledger: the features to build, in order, each with a verify command, and the "
                     "smoke test. flotilla writes features.json and PROGRESS.md from it. Call it once."),
        input_schema={"type": "object", "required": ["features"] + ([] if smoke_configured else ["smoke"]),
                      "properties": props},
        validate=lambda answer: submission_errors(answer, max_features, smoke_configured=smoke_configured))


def submission_errors(answer: dict[str, Any], max_features: int, *, smoke_configured: bool) -> list[str]:
    features = answer.get("features")
    if not isinstance(features, list) or not features:
        return ["`features` must be a non-empty list of features"]
    errors = [] if smoke_configured or _text(answer.get("smoke")) else ["`smoke` must be a non-empty shell command"]
    if len(features) > max_features:
        errors.append(f"{len(features)} features submitted; at most {max_features} are allowed: join small ones")
    return errors + feature_errors(features)


def feature_errors(features: list[Any], taken: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """What is wrong with a list of features, each naming the feature and the field."""
    errors, seen = [], set(taken)
    for n, raw in enumerate(features, 1):
        where = f"feature {n}"
        if not isinstance(raw, dict):
            errors.append(f"{where} must be an object")
            continue
        for key in IDENTITY:
            if not _text(raw.get(key)):
                errors.append(f"{where}: `{key}` must be a non-empty string")
        fid = raw.get("id")
        if _text(fid):
            if not FEATURE_ID.match(fid):
                errors.append(f"{where} ({fid!r}): `id` may hold only letters, digits, - _ . (at most 40)")
            if fid in seen:
                errors.append(f"{where} ({fid!r}): `id` is used twice; ids must be unique")
            seen.add(fid)
    return errors


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def feature(raw: dict[str, Any]) -> dict[str, Any]:
    """A feature as the ledger records it: its identity, ``passes`` false, its counters empty."""
    return {**{k: raw[k].strip() for k in IDENTITY}, "passes": False, "sessions": 0, "cost_usd": 0.0,
            "last_failure": "", "note": ""}


def identity_hash(f: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([f.get(k) for k in IDENTITY]).encode()).hexdigest()


def features_json(features: list[dict[str, Any]]) -> str:
    """``features.json``: each feature's identity and ``passes``, nothing else (counters stay in the store)."""
    return json.dumps([{**{k: f[k] for k in IDENTITY}, "passes": f["passes"]} for f in features], indent=2) + "\n"


def differences(text: str | None, features: list[dict[str, Any]], hashes: dict[str, str]) -> list[str]:
    """How a ``features.json`` differs from the record: empty when it is the record's own rendering."""
    if text is None:
        return [f"{FEATURES} was deleted"]
    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"{FEATURES} is not valid JSON ({exc.msg})"]
    if not isinstance(found, list) or not all(isinstance(f, dict) for f in found):
        return [f"{FEATURES} is not a list of features"]
    by_id = {f.get("id"): f for f in found}
    wanted = [f["id"] for f in features]
    problems = [f"feature {i!r} was removed" for i in wanted if i not in by_id]
    problems += [f"feature {f.get('id')!r} was added (only `flotilla ledger add` adds features)"
                 for f in found if f.get("id") not in hashes]
    if not problems and [f.get("id") for f in found] != wanted:
        problems.append("the features were reordered")
    for f in features:
        got = by_id.get(f["id"])
        if got is None:
            continue
        if identity_hash(got) != hashes.get(f["id"]):
            changed = [k for k in IDENTITY if got.get(k) != f[k]]
            problems.append(f"feature {f['id']!r} was reworded ({', '.join(changed)})")
        if got.get("passes") is not f["passes"]:
            problems.append(f"feature {f['id']!r}: `passes` was set to {got.get('passes')!r}; only flotilla sets it")
        if set(got) - {*IDENTITY, "passes"}:
            problems.append(f"feature {f['id']!r} got fields of its own: {', '.join(sorted(set(got) - {*IDENTITY, 'passes'}))}")
    return problems


def sandbox(session: Any, root: str) -> Any:
    """The sandbox the ledger's checks (verify, smoke) run in: the project's ``[sandbox] checks``."""
    from ..workspaces.sandbox import sandbox_for

    return sandbox_for(session.settings_for(Path(root))).for_checks()


def read(root: Path, name: str) -> str | None:
    path = root / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def progress_md(ledger: dict[str, Any], old: str | None) -> str:
    """``PROGRESS.md``: goal, current state, next step, the checklist from the record and the dated log,
    all flotilla's; the ``## Notes`` section below them is the sessions' own and is kept."""
    features = ledger["features"]
    done = sum(f["passes"] for f in features)
    nxt = next((f for f in features if not f["passes"]), None)
    state = ledger.get("current_state") or ""
    lines = ["# Progress", "", "## Goal", "", ledger["goal"], "", "## Current state", "",
             f"{done} of {len(features)} features pass (verified by flotilla). {state}".rstrip(), "",
             "## Next step", ""]
    if nxt is None:
        lines.append("Every feature passes. Nothing is left to build.")
    else:
        lines.append(f"Implement `{nxt['id']}` ({nxt['name']}); it is done when `{nxt['verify']}` passes.")
        if nxt["last_failure"]:
            lines.append(f"Last attempt failed: {nxt['last_failure']}")
    lines += ["", f"Smoke test (run it first): `{ledger['smoke']}`", "", BLOCK_START, "## Features", ""]
    for f in features:
        note = f" ({f['note']})" if f["note"] else ""
        lines.append(f"- [{'x' if f['passes'] else ' '}] `{f['id']}` {f['name']}: {f['description']}{note}")
    lines += ["", "## Log", ""] + [f"- {entry}" for entry in ledger.get("log", [])] + [BLOCK_END, "", ""]
    notes = old.split(NOTES, 1)[1] if old and NOTES in old else "\n\nWrite what the next session should know here.\n"
    return "\n".join(lines) + NOTES + notes


def write(root: Path, ledger: dict[str, Any]) -> None:
    """Writes both files from the record."""
    (root / FEATURES).write_text(features_json(ledger["features"]), encoding="utf-8")
    (root / PROGRESS).write_text(progress_md(ledger, read(root, PROGRESS)), encoding="utf-8")


def status_table(ledger: dict[str, Any]) -> str:
    """The features as a plain-text table (``flotilla ledger status``)."""
    rows = [("feature", "passes", "sessions", "cost", "last failure / note")]
    for f in ledger["features"]:
        rows.append((f["id"], "yes" if f["passes"] else "no", str(f["sessions"]), f"${f['cost_usd']:.4f}",
                     (f["note"] or f["last_failure"])[:70]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
