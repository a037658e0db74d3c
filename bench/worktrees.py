"""Worktrees through flotilla against bare git, and flotilla's own overhead in a race.

1. On a generated repository of about 5,000 files: create and remove 8
   worktrees through flotilla (``create_worktree``/``remove_worktree``)
   against a bare ``git worktree add`` / ``git worktree remove`` loop, in one
   run, alternating, best of several rounds. Target: within 1.3×.
2. A race of 8 scripted attempts on that repository (each reads a file, edits
   it and ends; the check is ``true``), against the bare git loop for the same
   8 worktrees: the difference is flotilla's own overhead (the agent loop,
   tools, commits, diffs, ranking, store writes), since the scripted model
   answers at once and the check does nothing.

Run: .venv/bin/python bench/worktrees.py
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
from flotilla.patterns.race import AttemptPlan
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.workspaces import create_worktree, open_repo, remove_worktree, resolve_commit

N = 8
FILES = 5000
ROUNDS = 5


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for d in range(FILES // 100):
        folder = root / f"pkg{d:02d}"
        folder.mkdir()
        for f in range(100):
            (folder / f"mod{f:03d}.py").write_text(f"# module {d}.{f}\nVALUE = {d * 100 + f}\n\n\ndef f(x):\n"
                                                   f"    return x + VALUE\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "init")
    git(root, "config", "user.name", "bench")
    git(root, "config", "user.email", "bench@localhost")
    return root


def bare_loop(root: Path, tag: str) -> float:
    start = time.perf_counter()
    paths = []
    for i in range(N):
        path = root / ".bare" / tag / f"a{i}"
        git(root, "worktree", "add", "-q", "-b", f"bare/{tag}/a{i}", str(path), "HEAD")
        paths.append(path)
    for i, path in enumerate(paths):
        git(root, "worktree", "remove", "--force", str(path))
        git(root, "branch", "-D", f"bare/{tag}/a{i}")
    return time.perf_counter() - start


def flotilla_loop(root: Path, tag: str) -> float:
    start = time.perf_counter()
    repo = open_repo(root)
    base = resolve_commit(repo, "HEAD")
    made = [create_worktree(repo, tag, f"a{i}", base) for i in range(N)]
    for wt in made:
        remove_worktree(repo, wt.path, branch=wt.branch)
    return time.perf_counter() - start


def race_once(root: Path, store: SQLiteStore, *, durable: bool = False) -> float:
    """One race of N scripted attempts through the public API, in memory or durable (every step recorded
    in the store's SQLite file)."""
    def fixer(name: str) -> ScriptedModel:
        return ScriptedModel([tool_call("Read", {"file_path": "pkg00/mod000.py"}),
                              tool_call("Edit", {"file_path": "pkg00/mod000.py", "old_string": "x + VALUE",
                                                 "new_string": "VALUE + x"}),
                              reply("done")], name=name)

    plans = [AttemptPlan(f"a{i + 1}", "implementer", f"scripted:m{i}") for i in range(N)]
    models = {p.model: (lambda name=p.model: fixer(name)) for p in plans}
    settings = load_settings(cwd=root, environ={}, user_file=root / "none.toml")
    session = Session(project=root, durable=durable, store=store, settings=settings, models=models,
                      home=root / "no-home")
    start = time.perf_counter()
    outcome = session.race_sync("swap the operands", check="true", plans=plans, pick="manual")
    elapsed = time.perf_counter() - start
    assert outcome.winner is not None, [a.error for a in outcome.attempts]
    for a in outcome.attempts:
        git(root, "branch", "-D", a.branch)
    return elapsed


def main() -> None:
    # /dev/shm when there is one: the shared disk's noise would otherwise swamp git's own time
    where = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        root = make_repo(Path(tmp) / "repo")
        print(f"repository in {tmp}: {FILES} files; {N} worktrees per round; {ROUNDS} rounds, alternating")
        bare, ours = [], []
        for r in range(ROUNDS):
            bare.append(bare_loop(root, f"r{r}"))
            ours.append(flotilla_loop(root, f"r{r}"))
        b, f = min(bare), min(ours)
        print(f"create+remove {N} worktrees  bare git: best {b:.3f}s  median {statistics.median(bare):.3f}s")
        print(f"create+remove {N} worktrees  flotilla: best {f:.3f}s  median {statistics.median(ours):.3f}s")
        print(f"ratio flotilla/bare: {f / b:.2f}x (best), {statistics.median(ours) / statistics.median(bare):.2f}x "
              f"(median); target <= 1.3x")
        store = SQLiteStore(Path(tmp) / "store.db")
        races = [race_once(root, store) for _ in range(3)]
        durable = [race_once(root, store, durable=True) for _ in range(3)]
        bare_again = [bare_loop(root, f"x{r}") for r in range(3)]
        git_t = min(bare_again)
        for label, times in (("in memory", races), ("durable", durable)):
            race_t = min(times)
            print(f"race of {N} scripted attempts (check `true`), {label}: best {race_t:.3f}s; bare git worktrees "
                  f"alone {git_t:.3f}s; flotilla's own overhead {race_t - git_t:.3f}s "
                  f"({(race_t - git_t) / N * 1000:.0f} ms per attempt)")


if __name__ == "__main__":
    sys.exit(main())
