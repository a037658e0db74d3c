"""The findings loop's own bookkeeping per round, and the approval gate's latency.

1. ``Session.review`` of ``ROUNDS`` rounds on scripted models (instant), no check: each round the
   reviewer resolves the last finding and raises a new one, the writer fixes it. Bookkeeping = the
   wall time minus the time inside the agent runs (each child run's own span in the store): the
   ``submit_review`` validation, the ledger, the diffs in the prompts, the fix units' worktree and
   commit, the store. Beside it, a bare round written by hand: the same two agent runs through
   ``Session.run`` and a ``git commit``, no loop.
2. The gate: a pipeline waiting at its gate in this process, ``Session.approve`` → the backend's
   first model request; in memory and durable (DBOS, SQLite). The wait polls the store every 0.2 s.

Run: .venv/bin/python bench/findings.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flotilla import Session
from flotilla.config import load_settings
from flotilla.store import SQLiteStore
from flotilla.testing import FunctionModel, ScriptedModel, reply, tool_call

ROUNDS = 6
SAMPLES = 3


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for n in range(ROUNDS + 1):
        (root / f"m{n}.py").write_text("".join(f"def f{i}():\n    return {i}\n\n" for i in range(50)))
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "b"], ["config", "user.email", "b@b"],
                 ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def finding(n: int) -> dict:
    return {"id": f"f{n}", "severity": "P1", "confidence": 0.9, "file": f"m{n}.py", "line_start": 1, "line_end": 2,
            "title": f"bug {n}", "body": "explained"}


def scripts() -> tuple[list, list]:
    writer = [tool_call("Write", {"file_path": "m0.py", "content": "x = 0\n"}), reply("written")]
    reviewer = [tool_call("submit_review", {"verdict": "changes_needed", "findings": [finding(1)]})]
    for n in range(1, ROUNDS):
        writer += [tool_call("Write", {"file_path": f"m{n}.py", "content": f"x = {n}\n"}), reply("fixed")]
        last = n == ROUNDS - 1
        reviewer.append(tool_call("submit_review", {"verdict": "clean" if last else "changes_needed",
                                                    "findings": [] if last else [finding(n + 1)],
                                                    "resolved": [f"f{n}"]}))
    return writer, reviewer


def session(root: Path, store: SQLiteStore, models: dict, durable: bool = False) -> Session:
    settings = load_settings(cwd=root, environ={}, user_file=root / "none.toml")
    return Session(project=root, durable=durable, store=store, settings=settings, models=models, home=root / "no-home")


def agent_time(store: SQLiteStore, parent: str) -> float:
    return sum(r["updated_at"] - r["created_at"] for r in store.list_runs(parent_id=parent, limit=1000))


def loop_once(root: Path, store: SQLiteStore) -> tuple[float, float]:
    writer, reviewer = scripts()
    w, r = ScriptedModel(writer, name="scripted:claude-w"), ScriptedModel(reviewer, name="scripted:gpt-r")
    s = session(root, store, {w.name: w, r.name: r})
    start = time.perf_counter()
    result = s.review_sync("bench", writer=w.name, reviewer=r.name, rounds=ROUNDS)
    wall = time.perf_counter() - start
    assert result["ended"] == "clean" and len(result["rounds"]) == ROUNDS, result["reason"]
    subprocess.run(["git", "branch", "-D", result["branch"]], cwd=root, check=True, capture_output=True)
    return wall, agent_time(store, result["review_id"])


def bare_once(root: Path, store: SQLiteStore) -> tuple[float, float]:
    """The same agent work by hand: a worktree, then per round a read-only review run, a writer run, a commit."""
    writer, reviewer = scripts()
    reviewer = [reply("looks wrong") for _ in reviewer]
    w, r = ScriptedModel(writer, name="scripted:claude-w"), ScriptedModel(reviewer, name="scripted:gpt-r")
    s = session(root, store, {w.name: w, r.name: r})
    path = root.parent / f"bare-{time.monotonic_ns()}"
    subprocess.run(["git", "worktree", "add", "-q", "-b", path.name, str(path)], cwd=root, check=True)
    spans = 0.0

    async def go() -> None:
        nonlocal spans
        for n in range(ROUNDS):
            for agent, model, ro in (("implementer", w.name, False), ("reviewer", r.name, True)):
                t = time.perf_counter()
                await s.run(agent, "do it", model=model, cwd=path, read_only=ro)
                spans += time.perf_counter() - t
            subprocess.run(["git", "commit", "-qam", f"round {n}"], cwd=path, check=True, capture_output=True)

    start = time.perf_counter()
    s._sync(go)
    wall = time.perf_counter() - start
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=root, check=True)
    subprocess.run(["git", "branch", "-D", path.name], cwd=root, check=True, capture_output=True)
    return wall, spans


def gate_once(root: Path, store: SQLiteStore, durable: bool) -> float:
    first: list[float] = []

    def backend(request):  # noqa: ANN001 - a FunctionModel's function
        first.append(time.perf_counter())
        return reply("nothing to do")

    plan = {"plan": "# p", "files": ["m0.py"]}
    models = {"scripted:architect": ScriptedModel([tool_call("submit_plan", plan)], name="scripted:architect"),
              "scripted:backend": FunctionModel(backend, name="scripted:backend"),
              "scripted:review": ScriptedModel([tool_call("submit_review", {"verdict": "clean", "findings": []})],
                                               name="scripted:review")}
    stages = {"architect": "scripted:architect", "backend": "scripted:backend", "frontend": "scripted:backend",
              "test-writer": "scripted:backend", "security-reviewer": "scripted:review"}
    s = session(root, store, models, durable=durable)

    async def go() -> float:
        running = asyncio.create_task(s.pipeline("bench", models=stages))
        while not any(r["meta"].get("state") == "awaiting approval" and r["status"] == "running"
                      for r in store.list_runs(kind="pipeline", limit=1)):
            await asyncio.sleep(0.01)
        (run,) = store.list_runs(kind="pipeline", limit=1)
        approved = time.perf_counter()
        s.approve(run["id"])
        result = await running
        assert result["status"] == "done", result["reason"]
        subprocess.run(["git", "branch", "-D", result["branch"]], cwd=root, check=True, capture_output=True)
        return first[0] - approved

    return s._sync(go)


def main() -> None:
    where = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        root = make_repo(Path(tmp) / "repo")
        store = SQLiteStore(Path(tmp) / "store.db")
        loops = [loop_once(root, store) for _ in range(SAMPLES)]
        bares = [bare_once(root, store) for _ in range(SAMPLES)]
        own = min((wall - agents) / ROUNDS for wall, agents in loops)
        bare = min((wall - agents) / ROUNDS for wall, agents in bares)
        print(f"review of {ROUNDS} rounds, scripted: best {min(w for w, _ in loops):.3f}s; "
              f"bookkeeping {own * 1000:.0f} ms per round (wall minus agent runs)")
        print(f"bare hand-written round (2 Session.run + git commit): best {min(w for w, _ in bares):.3f}s; "
              f"outside the agent runs {bare * 1000:.0f} ms per round")
        print(f"per round, everything included: loop {min(w for w, _ in loops) / ROUNDS * 1000:.0f} ms, "
              f"bare {min(w for w, _ in bares) / ROUNDS * 1000:.0f} ms")
        for durable in (False, True):
            waits = [gate_once(root, store, durable) for _ in range(SAMPLES)]
            print(f"approve → next stage's first model request ({'durable' if durable else 'in memory'}): "
                  f"median {statistics.median(waits) * 1000:.0f} ms, best {min(waits) * 1000:.0f} ms "
                  "(the wait polls every 200 ms)")


if __name__ == "__main__":
    sys.exit(main())
