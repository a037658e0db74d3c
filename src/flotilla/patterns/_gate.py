"""An approval gate: a run stops and waits, durably, for a person's answer from any process.

The run (a pipeline after its plan stage; a fan-out's plan uses the same answer) records that it waits
(run meta ``state = "awaiting approval"``, ``gate``; a ``GateWaiting`` event) and waits through
``ex.wait_signal``, a recorded step, so the process may exit: ``answer`` (``Session.approve`` /
``reject``, ``flotilla approve`` / ``reject``) sends the signal from anywhere, and a run whose process
has gone is resumed by whoever answers. ``until_gate`` is how a front end starts a run and lets go of it
once it waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import UserError
from ..events import GateWaiting
from ..kernel.executor import Executor


async def wait_at_gate(ex: Executor, run_id: str, after: str, *, summary: str = "",
                       subject: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stops run ``run_id`` after stage ``after`` and waits (durably) for a person's answer, returned as
    ``{"approved", "note" or "reason", "after"}`` (a plain True/False counts as approve/reject).
    ``subject``: what is approved (stored with the answer: a plan's hash, say)."""
    session = ex.session
    await ex.step(f"gate:{after}", lambda: _waiting(session, run_id, after, summary))
    value = await ex.wait_signal(f"{run_id}:approve:{after}")  # one topic per gate: an answer answers one
    answer = {**(value if isinstance(value, dict) else {"approved": bool(value)}), "after": after}
    await ex.step(f"gate-answered:{after}", lambda: session.store.update_meta(
        run_id, state="running" if answer["approved"] else "rejected", gate=None,
        approval={**answer, **(subject or {})}))
    return answer


def _waiting(session: Any, run_id: str, after: str, summary: str) -> None:
    session.store.update_meta(run_id, state="awaiting approval", gate=after)
    session.emit(GateWaiting(run_id=run_id, gate=after, summary=summary))


async def until_gate(session: Any, task: str, run_id: str, job: dict[str, Any]) -> dict[str, Any] | None:
    """Starts task ``task`` as run ``run_id`` and returns its result when it ends, or None once it waits
    at a gate: it stays there, durably, so this process may exit and ``flotilla approve`` continue it."""
    if not session.durable:
        raise UserError("a run that waits for approval after this process exits needs a durable Session "
                        "(durable=True, the CLI's default); or pass yes=True")
    handle = await session.executor.spawn(task, job, id=run_id)
    while True:
        record = session.store.get_run(run_id)
        if record["status"] != "running":
            return await session.executor.result(handle)
        if record["meta"].get("state") == "awaiting approval":
            return None
        await asyncio.sleep(0.05)


def answer(session: Any, run_id: str, approved: bool, text: str = "") -> dict[str, Any]:
    """A person's answer to a run waiting at a gate (a pipeline's, or a fan-out's plan); the run record."""
    record = session.store.get_run(run_id)
    if record["status"] != "running" or record["meta"].get("state") != "awaiting approval":
        raise UserError(f"run {record['id']} is not waiting for approval ({record['status']}, "
                        f"{record['meta'].get('state') or 'no plan yet'})")
    if record["kind"] == "pipeline":
        value: Any = {"approved": approved, ("note" if approved else "reason"): text}
    else:
        value = approved
    session.signal(record["id"], _topic(record), value)
    return record


def answered(session: Any, run_id: str) -> bool | None:
    """Whether the gate run ``run_id`` waits at was answered already (approved: True), though the run has
    not taken the answer yet (its process exited, say); None when it was not. The first answer counts."""
    record = session.store.get_run(run_id)
    value = session.store.first_signal(f"{record['id']}:{_topic(record)}")
    if value is None:
        return None
    return bool(value.get("approved")) if isinstance(value, dict) else bool(value)


def _topic(record: dict[str, Any]) -> str:
    gate = record["meta"].get("gate")
    return f"approve:{gate}" if gate else "approve"  # one topic per gate: an answer answers one
