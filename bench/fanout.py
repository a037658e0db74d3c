"""Fan-out's own overhead per slice against the race's per attempt, and its merge queue against bare git.

On a generated repository of about 5,000 files (``bench/worktrees.py``'s):

1. A fan-out of 16 scripted slices (the lead plans them at once through ``submit_plan``; each worker
   edits its own file; each proof is a ``grep``, the check ``true``) and a race of 16 scripted attempts
   (the same edit, check ``true``), in one run, in memory. Overhead = wall time minus the time spent in
   proofs and checks (each one's own ``duration_s``), per slice or attempt: everything that is neither
   the model (scripted, instant) nor a check: worktrees, the agent loop and tools, commits, diffs, the
   merge queue, the store.
2. The merge queue (``workspaces.integration.merge_one``, no check) taking 16 non-conflicting
   branches into an integration worktree, against a bare ``git merge --no-ff`` loop over the same
   branches in a bare worktree; alternating, best of 5. Target: within 1.3x.

Run: .venv/bin/python bench/fanout.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flotilla import Session
from flotilla.config import load_settings
from flotilla.patterns.race import AttemptPlan
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.workspaces import create_worktree, open_repo, remove_worktree, resolve_commit
from flotilla.workspaces.integration import merge_one
from worktrees import FILES, git, make_repo

N = 16
ROUNDS = 5


def edit(path: str) -> list:
    return [tool_call("Edit", {"file_path": path, "old_string": "x + VALUE", "new_string": "VALUE + x  # DONE"}),
            reply(f"{path}: operands swapped.")]


def checks_time(rows: list[dict]) -> float:
    return sum((r.get(k) or {}).get("duration_s", 0.0) for r in rows
               for k in ("proof_before", "proof_after", "check", "check_after_merge"))


def fanout_once(root: Path, store: SQLiteStore) -> tuple[float, float]:
    files = [f"pkg{i:02d}/mod000.py" for i in range(N)]
    plan = {"slices": [{"id": f"s{i}", "title": f"swap in {p}", "instructions": f"Swap the operands in {p}.",
                        "files": [p], "proof": f"grep -q DONE {p}"} for i, p in enumerate(files)]}
    lead = ScriptedModel([tool_call("submit_plan", plan), reply("done")], name="scripted:lead")
    models = {"scripted:lead": lead, **{f"scripted:w{i}": (lambda p=p: ScriptedModel(edit(p), name="scripted:w"))
                                        for i, p in enumerate(files)}}
    settings = load_settings(cwd=root, environ={}, user_file=root / "none.toml")
    session = Session(project=root, durable=False, store=store, settings=settings, models=models, home=root / "no-home")
    start = time.perf_counter()
    result = session.fanout_sync("swap the operands everywhere", lead="scripted:lead", check="true", yes=True,
                                 max_slices=N, models=[f"scripted:w{i}" for i in range(N)], pick="manual")
    elapsed = time.perf_counter() - start
    assert all(s["status"] == "merged" for s in result["slices"]), [s.get("error") for s in result["slices"]]
    git(root, "branch", "-D", result["integration_branch"])
    return elapsed, checks_time(result["slices"])


def race_once(root: Path, store: SQLiteStore) -> tuple[float, float]:
    plans = [AttemptPlan(f"a{i + 1}", "implementer", f"scripted:m{i}") for i in range(N)]
    models = {p.model: (lambda: ScriptedModel(edit("pkg00/mod000.py"), name="scripted:m")) for p in plans}
    settings = load_settings(cwd=root, environ={}, user_file=root / "none.toml")
    session = Session(project=root, durable=False, store=store, settings=settings, models=models, home=root / "no-home")
    start = time.perf_counter()
    outcome = session.race_sync("swap the operands", check="true", plans=plans, pick="manual")
    elapsed = time.perf_counter() - start
    for a in outcome.attempts:
        git(root, "branch", "-D", a.branch)
    return elapsed, sum((a.check or {}).get("duration_s", 0.0) for a in outcome.attempts)


def make_branches(root: Path) -> list[str]:
    repo = open_repo(root)
    base = resolve_commit(repo, "HEAD")
    names = []
    for i in range(N):
        wt = create_worktree(repo, "bench", f"b{i}", base, include=False)
        target = wt.path / f"pkg{i:02d}" / "mod001.py"
        target.write_text(target.read_text() + "# changed\n")
        wt.commit(f"b{i}")
        remove_worktree(repo, wt.path)
        names.append(wt.branch)
    return names


def bare_queue(root: Path, branches: list[str], tag: str) -> float:
    path = root / ".bare" / tag
    git(root, "worktree", "add", "-q", "-b", f"bare/{tag}", str(path), "HEAD")
    start = time.perf_counter()
    for b in branches:
        git(path, "merge", "--no-ff", "-q", "-m", f"merge {b}", b)
    elapsed = time.perf_counter() - start
    git(root, "worktree", "remove", "--force", str(path))
    git(root, "branch", "-D", f"bare/{tag}")
    return elapsed


def our_queue(root: Path, branches: list[str], tag: str) -> float:
    repo = open_repo(root)
    wt = create_worktree(repo, tag, "integration", resolve_commit(repo, "HEAD"), include=False)
    head = wt.head()

    async def go() -> None:
        nonlocal head
        for b in branches:
            done = await merge_one(wt, b, head, message=f"merge {b}")
            assert done.merged, done.reason
            head = done.head

    start = time.perf_counter()
    asyncio.run(go())
    elapsed = time.perf_counter() - start
    remove_worktree(repo, wt.path, branch=wt.branch)
    return elapsed


def main() -> None:
    where = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        root = make_repo(Path(tmp) / "repo")
        store = SQLiteStore(Path(tmp) / "store.db")
        print(f"repository in {tmp}: {FILES} files; {N} slices / attempts / branches")
        fan = [fanout_once(root, store) for _ in range(3)]
        race = [race_once(root, store) for _ in range(3)]
        f_over = min((t - c) / N for t, c in fan)
        r_over = min((t - c) / N for t, c in race)
        print(f"fan-out of {N} scripted slices: best {min(t for t, _ in fan):.3f}s, proofs+checks "
              f"{min(c for _, c in fan):.3f}s; own overhead {f_over * 1000:.0f} ms per slice")
        print(f"race of {N} scripted attempts: best {min(t for t, _ in race):.3f}s, checks "
              f"{min(c for _, c in race):.3f}s; own overhead {r_over * 1000:.0f} ms per attempt")
        print(f"fan-out/race overhead per unit: {f_over / r_over:.2f}x")
        branches = make_branches(root)
        bare, ours = [], []
        for r in range(ROUNDS):
            bare.append(bare_queue(root, branches, f"q{r}"))
            ours.append(our_queue(root, branches, f"q{r}"))
        b, o = min(bare), min(ours)
        print(f"merge {N} branches  bare git merge loop: best {b:.3f}s  median {statistics.median(bare):.3f}s")
        print(f"merge {N} branches  flotilla merge queue: best {o:.3f}s  median {statistics.median(ours):.3f}s")
        print(f"ratio queue/bare: {o / b:.2f}x (best), {statistics.median(ours) / statistics.median(bare):.2f}x "
              "(median); target <= 1.3x")


if __name__ == "__main__":
    sys.exit(main())
