"""Workflows on a real SQLite file: cancel and resume from the last finished step, child
workflows with wait_first / wait_all, states for `flotilla runs`, sharing the run store's file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from flotilla import durable
from flotilla.durable import DurableSteps
from flotilla.errors import Cancelled, ConfigError, ProviderError, UserError
from flotilla.store import SQLiteStore

RUNS: dict[str, int] = {}
GATE = {"open": False}


def count(name: str) -> None:
    RUNS[name] = RUNS.get(name, 0) + 1


@durable.workflow("test.three_steps")
async def three_steps(label: str) -> dict:
    steps = DurableSteps()

    async def plain(name: str) -> str:
        count(name)
        return name

    async def gated() -> str:
        count("c")
        while not GATE["open"]:
            await asyncio.sleep(0.05)  # the call in flight when the run is cancelled
        return "c"

    done = [await steps.step("a", lambda: plain("a")), await steps.step("b", lambda: plain("b")),
            await steps.step("c", gated)]
    return {"label": label, "done": done, "executed": steps.executed, "replayed": steps.replayed}


@durable.workflow("test.sleeper")
async def sleeper(seconds: float) -> float:
    async def nap() -> float:
        await asyncio.sleep(seconds)
        return seconds

    return await DurableSteps().step("nap", nap)


@durable.workflow("test.parent")
async def parent(delays: list[float]) -> dict:
    children = [await durable.start(sleeper, d) for d in delays]
    first = await durable.wait_first(children)
    return {"first": first.id, "ids": [c.id for c in children], "all": await durable.wait_all(children)}


@durable.workflow("test.parallel_tools")
async def parallel_tools(reserve: bool) -> list[str]:
    steps = DurableSteps()
    if reserve:
        steps.reserve_tool_calls(["slow", "fast"])

    async def call(name: str, delay: float) -> str:
        await asyncio.sleep(delay)  # a hook or a permission check before the call reaches the seam

        async def tool() -> str:
            return name

        return await steps.tool_call(name, tool)

    return list(await asyncio.gather(call("slow", 0.3), call("fast", 0.0)))


@durable.workflow("test.fails")
async def fails() -> None:
    async def overloaded() -> None:
        raise ProviderError("Overloaded", status=529, kind="overloaded_error")

    await DurableSteps().step("call", overloaded)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / ".flotilla" / "flotilla.db"
    durable.launch(f"sqlite:///{path}")
    yield path
    durable.shutdown()


async def test_cancel_stops_the_call_in_flight_and_resume_skips_finished_steps(db: Path) -> None:
    RUNS.clear()
    GATE["open"] = False
    handle = await durable.start(three_steps, "x", workflow_id="cancel-me")
    while RUNS.get("c") != 1:
        await asyncio.sleep(0.02)
    assert handle.status() == "running"
    with pytest.raises(UserError, match="still running"):
        durable.resume(handle.id)
    started = time.monotonic()
    await durable.cancel(handle.id)
    with pytest.raises(Cancelled):
        await handle.result()
    assert time.monotonic() - started < 5, "a preemptible step should stop at once, not at the next step"
    assert [w.state for w in durable.workflows(ids=["cancel-me"])] == ["cancelled"]
    assert [s.name for s in durable.recorded_steps("cancel-me")] == ["a", "b"]

    GATE["open"] = True
    result = await durable.resume("cancel-me").result()
    assert result["done"] == ["a", "b", "c"]
    assert (result["executed"], result["replayed"]) == (1, 2)
    assert RUNS == {"a": 1, "b": 1, "c": 2}  # finished steps ran once; the one in flight, again


async def test_child_workflows_wait_first_and_wait_all(db: Path) -> None:
    result = await (await durable.start(parent, [1.0, 0.05, 0.6], workflow_id="race-1")).result()
    assert result["first"] == result["ids"][1]
    assert result["all"] == [1.0, 0.05, 0.6]
    children = durable.workflows(parent_id="race-1")
    assert sorted(c.id for c in children) == sorted(result["ids"])
    assert {c.state for c in children} == {"done"}


async def test_reserved_tool_calls_are_recorded_in_the_order_the_model_gave_them(db: Path) -> None:
    assert await (await durable.start(parallel_tools, True, workflow_id="reserved")).result() == ["slow", "fast"]
    assert await (await durable.start(parallel_tools, False, workflow_id="arrival")).result() == ["slow", "fast"]
    assert [s.name for s in durable.recorded_steps("reserved")] == ["tool:slow", "tool:fast"]
    assert [s.name for s in durable.recorded_steps("arrival")] == ["tool:fast", "tool:slow"]


async def test_states_and_errors_for_runs(db: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        await (await durable.start(fails, workflow_id="f-1")).result()
    assert caught.value.status == 529 and caught.value.retryable
    GATE["open"] = True
    await (await durable.start(three_steps, "y", workflow_id="ok-1")).result()
    states = {w.id: (w.name, w.state) for w in durable.workflows()}
    assert states["f-1"] == ("test.fails", "failed") and states["ok-1"] == ("test.three_steps", "done")
    assert "529" in (durable.workflows(ids=["f-1"])[0].error or "")
    with pytest.raises(UserError, match="no durable run"):
        durable.resume("nope")
    with pytest.raises(UserError, match="start it again"):
        durable.resume("f-1")


async def test_the_database_is_the_run_store_file_in_wal_mode(db: Path) -> None:
    store = SQLiteStore(db)
    run_id = store.create_run("agent", "shared file")
    GATE["open"] = True
    await (await durable.start(three_steps, "z", workflow_id=run_id)).result()
    store.finish_run(run_id, "done")
    assert store.get_run(run_id)["status"] == "done"
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = raw.execute("SELECT DISTINCT application_version FROM workflow_status").fetchall()
    assert {"runs", "events", "workflow_status", "operation_outputs", "flotilla_executors"} <= tables
    assert version == [(durable.APP_VERSION,)]
    store.close()


def test_executors_elsewhere_are_dead_after_their_silence(db: Path) -> None:
    import sqlalchemy as sa

    runtime = durable.current()
    with runtime.engine.begin() as c:
        for name, age in (("fresh", 1.0), ("silent", 60.0)):
            c.execute(sa.text("INSERT INTO flotilla_executors VALUES (:e, 'elsewhere', 1, 0, "
                              "((julianday('now') - 2440587.5) * 86400.0) - :age)"), {"e": name, "age": age})
    assert runtime.heartbeat.alive() == {runtime.executor_id, "fresh"}
    runtime.heartbeat.forget(["silent"])
    assert {e.executor_id for e in runtime.heartbeat.executors()} == {runtime.executor_id, "fresh"}


def test_database_url_defaults_to_the_project_file_and_reads_the_environment(tmp_path: Path) -> None:
    assert durable.database_url(tmp_path, environ={}) == f"sqlite:///{tmp_path}/.flotilla/flotilla.db"
    assert durable.database_url(environ={"FLOTILLA_DATABASE_URL": "postgres://u:p@h/db"}) == "postgresql://u:p@h/db"
    with pytest.raises(ConfigError, match="FLOTILLA_DATABASE_URL"):
        durable.database_url(environ={"FLOTILLA_DATABASE_URL": "mysql://x/y"})


def test_an_unreachable_database_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="FLOTILLA_DATABASE_URL"):
        durable.launch("postgresql://nobody:x@127.0.0.1:1/none")
    with pytest.raises(RuntimeError, match="not launched"):
        durable.current()
    durable.launch(f"sqlite:///{tmp_path / 'after.db'}")  # a failed launch leaves nothing behind
    durable.shutdown()
