"""What the buttons do: each calls the Session function the CLI command of the same name calls.

``resume`` and ``gc`` are the exceptions in form, not in substance: they run ``flotilla resume RUN`` and
``flotilla gc`` as processes of their own, because both start the durable runtime (one per process,
not the dashboard's to hold), and a resumed run must not end when the dashboard does; its pid lands in
the durable runtime's heartbeat, so the page knows it is alive and `stop` reaches it as any run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..store import why_not_resumable


def steer(session: Any, run_id: str, form: dict[str, str]) -> str:
    target = session.steer(run_id, form.get("message", "").strip(), read_only=bool(form.get("read_only")))
    return f"sent to run {target}; it takes it before its next model call"


def stop(session: Any, run_id: str, form: dict[str, str]) -> str:
    targets = session.stop(run_id)
    more = f" and {len(targets) - 1} running run(s) under it" if len(targets) > 1 else ""
    return f"asked run {targets[0]}{more} to stop"


def signal(session: Any, run_id: str, form: dict[str, str]) -> str:
    """Answers a gate (``approve`` by default): the hook a pipeline's or fan-out's approval uses."""
    topic = form.get("topic") or "approve"
    value = form.get("value", "yes") in ("yes", "true", "1")
    run = session.store.get_run(run_id)
    session.signal(run["id"], topic, value)
    return f"{'approved' if value else 'rejected'} {topic} of run {run['id']}"


def merge(session: Any, run_id: str, form: dict[str, str]) -> str:
    head = session.merge(run_id, form.get("attempt") or None, squash=bool(form.get("squash")))
    record = session.store.get_run(run_id)
    what = (record["result"] or {}).get("winner") or (record["result"] or {}).get("integration_branch")
    return f"merged {what} into {record['meta'].get('base_branch')} at {head[:10]}"


def resume(session: Any, run_id: str, form: dict[str, str]) -> str:
    from ._data import shown_status

    run = session.store.get_run(run_id)
    why = why_not_resumable(run)
    if why:
        raise UserError(why)
    if shown_status(run, session.store) != "crashed":
        raise UserError(f"run {run['id']} is still running (its process {run['pid']} is alive); nothing to resume")
    log = _resume(session, run)
    if log is None:
        raise UserError(f"run {run['id']} is being resumed already, by a process this dashboard started")
    return f"resuming run {run['id']} in a process of its own (its output: {log})"


def approve(session: Any, run_id: str, form: dict[str, str]) -> str:
    """``flotilla approve RUN --note``: ``Session.approve``; a run whose process has exited goes on in
    a process of its own (as the CLI goes on with it in the foreground)."""
    return _answer(session, run_id, True, form.get("note", "").strip())


def reject(session: Any, run_id: str, form: dict[str, str]) -> str:
    """``flotilla reject RUN --reason``: ``Session.reject``; the run ends, nothing more is spent."""
    reason = form.get("reason", "").strip()
    if not reason:
        raise UserError("a rejection needs a reason (it is stored with the run): write it in the box")
    return _answer(session, run_id, False, reason)


def _answer(session: Any, run_id: str, approved: bool, text: str) -> str:
    """Answers the gate once: a second click (or a second person) finds the first answer, which counts,
    and only makes sure the run goes on."""
    from ..patterns._gate import answered
    from ._data import process_gone

    run = session.store.get_run(run_id)
    first = answered(session, run["id"]) if run["meta"].get("state") == "awaiting approval" else None
    if first is None:
        (session.approve if approved else session.reject)(run["id"], text)
        said = f"approved run {run['id']}" if approved else f"rejected run {run['id']}: {text}"
    else:
        said = f"run {run['id']} was {'approved' if first else 'rejected'} already (the first answer counts)"
    if not process_gone(run, session.store):
        return f"{said} (it goes on in the process running it)"
    why = why_not_resumable(run)
    if why:
        return f"{said}; its process has exited and it cannot go on: {why}"
    log = _resume(session, run)
    if log is None:
        return f"{said} (it goes on in the process this dashboard started for it)"
    return f"{said}; its process had exited: it goes on in a process of its own (its output: {log})"


def _resume(session: Any, run: dict[str, Any]) -> Path | None:
    """``flotilla resume RUN`` in a process of its own (it must outlive the dashboard); its log's path, or
    None when one this dashboard started for the run still runs (never two resuming one run)."""
    with _lock:  # actions run in threads: two clicks at once start one process
        for rid, proc in list(_resuming.items()):
            if proc.poll() is not None:  # reap the ones that ended
                del _resuming[rid]
        if run["id"] in _resuming:
            return None
        log = Path(session.store.path).parent / f"resume-{run['id']}.log"
        with open(log, "ab") as out:
            _resuming[run["id"]] = subprocess.Popen(
                [sys.executable, "-m", "flotilla.cli", "resume", run["id"], "--store", session.store.path],
                cwd=session.project, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        return log


def gc(session: Any, form: dict[str, str]) -> str:
    """``flotilla gc`` in a process of its own: giving crashed durable runs up starts the durable runtime,
    which is one per process and not the dashboard's to hold."""
    command = [sys.executable, "-m", "flotilla.cli", "gc", "--store", session.store.path]
    done = subprocess.run(command + (["--dry-run"] if form.get("dry_run") else []), cwd=session.project,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    said = "; ".join(lines[-8:]) or f"gc exited {done.returncode}"
    if done.returncode:
        raise UserError(said.removeprefix("error: "))
    return said


_resuming: dict[str, subprocess.Popen[bytes]] = {}  # by run
_lock = threading.Lock()
RUN_ACTIONS = {"steer": steer, "stop": stop, "signal": signal, "merge": merge, "resume": resume, "approve": approve,
               "reject": reject}
