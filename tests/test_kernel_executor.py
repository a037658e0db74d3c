"""One task written once against the executor seam runs the same in memory and durably: steps, children
spawned and waited for, a wait for a person's signal answered from another process's store write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flotilla import Session
from flotilla.kernel import Executor, task
from flotilla.store import SQLiteStore

CALLS: list[str] = []


@task("test.kernel_child")
async def child(ex: Executor, job: dict) -> dict:
    await ex.step("child:work", lambda: CALLS.append(f"child {job['n']}"))
    await ex.sleep(job["n"] * 0.05)
    return {"n": job["n"]}


@task("test.kernel_parent")
async def parent(ex: Executor, job: dict) -> dict:
    first = await ex.step("parent:first", lambda: CALLS.append("parent") or "done once")
    handles = [await ex.spawn("test.kernel_child", {"n": n}, id=f"{job['id']}-c{n}") for n in (3, 1, 2)]
    fastest = await ex.wait_first(handles)
    results = [await ex.result(h) for h in handles]
    approval = await ex.wait_signal(f"{job['id']}:gate", timeout_s=30)
    return {"first": first, "fastest": fastest.id, "results": results, "approval": approval}


@pytest.mark.parametrize("durable", [False, True])
async def test_one_task_in_memory_and_durably(tmp_path: Path, durable: bool) -> None:
    CALLS.clear()
    store = SQLiteStore(tmp_path / "store.db")
    async with Session(project=tmp_path, durable=durable, store=store) as session:
        handle = await session.executor.spawn("test.kernel_parent", {"id": "p1"}, id="p1")

        async def approve_later() -> None:
            await asyncio.sleep(0.3)
            SQLiteStore(tmp_path / "store.db").send_signal("p1:gate", {"approved": True, "note": "ship it"})

        approver = asyncio.create_task(approve_later())
        result = await session.executor.result(handle)
        await approver
    assert result["first"] == "done once" and result["fastest"] == "p1-c1"
    assert [r["n"] for r in result["results"]] == [3, 1, 2]
    assert result["approval"] == {"approved": True, "note": "ship it"}
    assert sorted(CALLS) == ["child 1", "child 2", "child 3", "parent"]
