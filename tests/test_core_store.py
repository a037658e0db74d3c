"""The SQLite run store: runs, events, usage and the steering inbox, shared across processes."""

import subprocess
import sys

from flotilla.events import ModelCalled, RunStarted
from flotilla.store import SQLiteStore


def test_runs_events_usage(tmp_path):
    store = SQLiteStore(tmp_path / "f.db")
    run = store.create_run("agent", "fix the bug", meta={"model": "scripted:x"})
    child = store.create_run("agent", "sub", parent_id=run)
    store.emit(RunStarted(run_id=run, kind="agent"))
    store.emit(ModelCalled(run_id=run, provider="scripted", model="x", input_tokens=10, output_tokens=5,
                           cost_usd=0.25))
    store.emit(ModelCalled(run_id=run, provider="scripted", model="x", input_tokens=1, cost_usd=0.5))
    store.finish_run(run, "done", result={"text": "ok"})
    got = store.get_run(run[:6])  # a unique prefix finds the run
    assert (got["status"], got["result"], got["meta"]["model"]) == ("done", {"text": "ok"}, "scripted:x")
    assert [e["event"] for e in store.events(run)] == ["RunStarted", "ModelCalled", "ModelCalled"]
    [row] = store.usage([run])
    assert (row["calls"], row["input_tokens"], row["cost_usd"]) == (2, 11, 0.75)
    assert [r["id"] for r in store.list_runs(parent_id=run)] == [child]


def test_steering_crosses_processes_and_is_taken_once(tmp_path):
    path = tmp_path / "f.db"
    store = SQLiteStore(path)
    run = store.create_run("agent")
    code = ("import sys; from flotilla.store import SQLiteStore; "
            f"SQLiteStore({str(path)!r}).send_steering({run!r}, 'use the stdlib', read_only=True)")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert store.take_steering(run) == [{"message": "use the stdlib", "read_only": True, "stop": False}]
    assert store.take_steering(run) == []


def test_the_event_tail_goes_on_from_an_id_across_processes(tmp_path):
    path = tmp_path / "f.db"
    store = SQLiteStore(path)
    assert store.last_event_id() == 0
    run, other = store.create_run("agent"), store.create_run("agent")
    store.emit(RunStarted(run_id=run, kind="agent"))
    start = store.last_event_id()
    code = ("from flotilla.store import SQLiteStore; from flotilla.events import RunStarted; s = SQLiteStore("
            f"{str(path)!r}); [s.emit(RunStarted(run_id=r, kind='agent')) for r in ({run!r}, {other!r}, {run!r})]")
    subprocess.run([sys.executable, "-c", code], check=True)
    tail = store.events_after(start)
    assert [e["run_id"] for e in tail] == [run, other, run] and tail[0]["id"] > start
    assert [e["id"] for e in store.events_after(start, run_ids=[run])] == [tail[0]["id"], tail[2]["id"]]
    assert store.events_after(tail[-1]["id"]) == [] and store.last_event_id() == tail[-1]["id"]
    assert len(store.events_after(0, limit=2)) == 2


def test_list_runs_filters_by_status_and_top_level_and_pages(tmp_path):
    store = SQLiteStore(tmp_path / "f.db")
    parent = store.create_run("race")
    store.create_run("attempt", parent_id=parent)
    done = store.create_run("agent")
    store.finish_run(done, "done")
    assert {r["id"] for r in store.list_runs(top_level=True)} == {parent, done}
    assert [r["id"] for r in store.list_runs(status="done")] == [done]
    assert len(store.list_runs(limit=1, offset=2)) == 1 and store.list_runs(limit=1, offset=3) == []
