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
