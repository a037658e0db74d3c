"""Worktrees, refusals, checks, merging and gc on real git repositories."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flotilla.errors import RepositoryError
from flotilla.store import SQLiteStore
from flotilla.workspaces import (collect_garbage, create_worktree, ensure_excluded, merge_branch, open_repo,
                                 parse_pytest, remove_worktree, require_branch, require_clean, resolve_commit,
                                 run_check)
from test_race_support import PYTEST, alive, branches, make_repo, sh, worktrees


def test_not_a_repository_is_refused(tmp_path):
    with pytest.raises(RepositoryError, match="not a git repository.*git init"):
        open_repo(tmp_path)


def test_bare_repository_is_refused(tmp_path):
    sh(tmp_path, "git", "init", "-q", "--bare", "b.git")
    with pytest.raises(RepositoryError, match="bare repository.*git clone"):
        open_repo(tmp_path / "b.git")


def test_detached_head_is_refused(tmp_path):
    repo = make_repo(tmp_path / "r")
    sh(repo, "git", "checkout", "-q", "--detach")
    with pytest.raises(RepositoryError, match="HEAD is detached.*git switch"):
        require_branch(open_repo(repo))


def test_dirty_repository_is_refused_but_untracked_files_are_not(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / "notes.txt").write_text("untracked")
    require_clean(open_repo(repo))
    (repo / "calc.py").write_text("changed\n")
    with pytest.raises(RepositoryError, match=r"uncommitted changes \(calc.py\).*--allow-dirty"):
        require_clean(open_repo(repo))


def test_unknown_base_is_refused(tmp_path):
    repo = open_repo(make_repo(tmp_path / "r"))
    with pytest.raises(RepositoryError, match="'nope' does not name a commit"):
        resolve_commit(repo, "nope")


def test_worktree_created_twice_is_the_same_worktree_and_copies_included_files(tmp_path):
    root = make_repo(tmp_path / "r")
    (root / ".env").write_text("SECRET=1\n")
    (root / ".worktreeinclude").write_text(".env\n")
    repo = open_repo(root)
    base = resolve_commit(repo, "HEAD")
    ensure_excluded(repo, "/.flotilla/worktrees/")
    ensure_excluded(repo, "/.flotilla/worktrees/")
    assert (repo.git_dir / "info" / "exclude").read_text().count("/.flotilla/worktrees/") == 1
    first = create_worktree(repo, "run1", "a1", base)
    (first.path / "calc.py").write_text("x = 1\n")
    again = create_worktree(repo, "run1", "a1", base)  # a re-run step: finds and reuses it
    assert again.path == first.path and (again.path / "calc.py").read_text() == "x = 1\n"
    assert (first.path / ".env").read_text() == "SECRET=1\n"
    assert first.branch == "flotilla/run1/a1" and first.branch in branches(root)
    assert sh(root, "git", "status", "--porcelain") == "?? .worktreeinclude"  # the worktree folder is ignored
    commit = first.commit("change")
    assert commit and first.commit("nothing") is None
    assert "+x = 1" in first.diff() and ".env" not in first.diff()
    remove_worktree(repo, first.path)  # removed, branch kept: re-creating checks the branch out again
    assert str(first.path) not in worktrees(root)
    back = create_worktree(repo, "run1", "a1", base)
    assert (back.path / "calc.py").read_text() == "x = 1\n"
    import shutil

    shutil.rmtree(back.path)  # deleted by hand, still registered and locked: creating again repairs it
    again = create_worktree(repo, "run1", "a1", base)
    assert (again.path / "calc.py").read_text() == "x = 1\n"
    remove_worktree(repo, back.path, branch=back.branch)
    assert "flotilla/run1/a1" not in branches(root) and not (root / ".flotilla/worktrees/run1").exists()


async def test_check_reports_exit_code_tail_and_pytest_summary(tmp_path):
    root = make_repo(tmp_path / "r")
    failing = await run_check(PYTEST, root)
    assert not failing.passed and failing.exit_code == 1 and failing.pytest == {"failed": 1}
    assert "assert" in failing.tail and failing.summary == "1 failed"
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    ok = await run_check(PYTEST, root)
    assert ok.passed and ok.pytest == {"passed": 1}


async def test_check_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    result = await run_check(f"sh -c 'echo $$ > {pidfile}; sleep 30' & wait", tmp_path, timeout=0.5)
    assert result.timed_out and not result.passed and result.exit_code is None
    pid = int(pidfile.read_text())
    assert not alive(pid)


def test_parse_pytest_summary_lines():
    assert parse_pytest("==== 2 failed, 3 passed, 1 warning in 0.12s ====") == {
        "failed": 2, "passed": 3, "warnings": 1}
    assert parse_pytest("1 error in 0.01s") == {"errors": 1}
    assert parse_pytest("make: *** Error 2") == {}


def _branch_with(repo, name, text):
    base = resolve_commit(repo, "HEAD")
    wt = create_worktree(repo, "r", name, base)
    (wt.path / "calc.py").write_text(text)
    wt.commit(name)
    remove_worktree(repo, wt.path)
    return wt.branch, base


def _conflicting_branch(tmp_path):
    """A repository whose main moved since the branch was made, so that the two conflict in calc.py."""
    root = make_repo(tmp_path / "r")
    repo = open_repo(root)
    branch, base = _branch_with(repo, "a1", "def add(a, b):\n    return a + b\n")
    (root / "calc.py").write_text("def add(a, b):\n    return b + a  # moved on\n")
    sh(root, "git", "commit", "-qam", "meanwhile")
    return root, repo, branch, base, resolve_commit(repo, "HEAD")


def test_merge_refuses_clearly_when_the_base_moved_and_conflicts(tmp_path):
    root, repo, branch, base, moved = _conflicting_branch(tmp_path)
    with pytest.raises(RepositoryError, match=r"does not merge cleanly into main \(main has moved.*calc.py"):
        merge_branch(repo, branch, base_branch="main", base_commit=base)
    assert resolve_commit(repo, "HEAD") == moved and sh(root, "git", "status", "--porcelain") == ""


def test_merge_and_squash_merge(tmp_path):
    root = make_repo(tmp_path / "r")
    repo = open_repo(root)
    branch, base = _branch_with(repo, "a1", "def add(a, b):\n    return a + b\n")
    head = merge_branch(repo, branch, base_branch="main", base_commit=base)
    assert len(sh(root, "git", "rev-list", "--parents", "-n1", head).split()) == 3  # a merge commit
    branch2, base2 = _branch_with(repo, "a2", "def add(a, b):\n    return sum((a, b))\n")
    head2 = merge_branch(repo, branch2, base_branch="main", base_commit=base2, squash=True)
    assert len(sh(root, "git", "rev-list", "--parents", "-n1", head2).split()) == 2
    assert "sum((a, b))" in (root / "calc.py").read_text()


def _subject(root, ref="HEAD"):
    return sh(root, "git", "log", "-1", "--format=%s", ref).strip()


def _merging(root):
    return subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=root,
                          capture_output=True).returncode == 0


def test_merge_concludes_a_merge_of_its_branch_left_half_done(tmp_path):
    root = make_repo(tmp_path / "r")
    repo = open_repo(root)
    branch, base = _branch_with(repo, "a1", "def add(a, b):\n    return a + b\n")
    sh(root, "git", "merge", "--no-commit", "--no-ff", "-q", branch)  # as a process killed mid-merge leaves it
    assert _merging(root)
    head = merge_branch(repo, branch, base_branch="main", base_commit=base)
    parents = sh(root, "git", "rev-list", "--parents", "-n1", head).split()
    assert parents[1:] == [base, resolve_commit(repo, branch)] and _subject(root) == f"flotilla: merge {branch}"
    assert not _merging(root) and sh(root, "git", "status", "--porcelain") == ""


def test_merging_again_returns_the_merge_that_landed(tmp_path):
    root = make_repo(tmp_path / "r")
    repo = open_repo(root)
    branch, base = _branch_with(repo, "a1", "def add(a, b):\n    return a + b\n")
    merged = merge_branch(repo, branch, base_branch="main", base_commit=base)
    assert merge_branch(repo, branch, base_branch="main", base_commit=base) == merged
    (root / "notes.txt").write_text("later work\n")
    sh(root, "git", "add", "notes.txt")
    sh(root, "git", "commit", "-qm", "later")
    assert merge_branch(repo, branch, base_branch="main", base_commit=base) == merged
    assert sh(root, "git", "rev-list", "--count", f"{base}..HEAD").strip() == "3"  # a1, its merge, later


def test_a_half_done_merge_with_conflicts_is_aborted_and_done_again(tmp_path):
    root, repo, branch, base, moved = _conflicting_branch(tmp_path)
    subprocess.run(["git", "merge", "--no-commit", "--no-ff", "-q", branch], cwd=root, capture_output=True)
    assert _merging(root)  # conflicted, half done
    with pytest.raises(RepositoryError, match="does not merge cleanly into main"):
        merge_branch(repo, branch, base_branch="main", base_commit=base)
    assert not _merging(root) and resolve_commit(repo, "HEAD") == moved
    assert sh(root, "git", "status", "--porcelain") == ""


def test_a_half_done_merge_of_something_else_is_left_to_the_user(tmp_path):
    root = make_repo(tmp_path / "r")
    repo = open_repo(root)
    mine, base = _branch_with(repo, "a1", "def add(a, b):\n    return a + b\n")
    theirs, _ = _branch_with(repo, "a2", "def add(a, b):\n    return sum((a, b))\n")
    sh(root, "git", "merge", "--no-commit", "--no-ff", "-q", theirs)
    with pytest.raises(RepositoryError, match=r"middle of another merge.*git merge --abort"):
        merge_branch(repo, mine, base_branch="main", base_commit=base)
    assert _merging(root)  # untouched


def test_a_half_done_squash_merge_is_concluded_and_not_repeated(tmp_path):
    root = make_repo(tmp_path / "r")
    repo = open_repo(root)
    branch, base = _branch_with(repo, "a1", "def add(a, b):\n    return a + b\n")
    sh(root, "git", "merge", "--squash", "-q", branch)  # staged, not committed
    head = merge_branch(repo, branch, base_branch="main", base_commit=base, squash=True)
    assert sh(root, "git", "rev-list", "--parents", "-n1", head).split()[1:] == [base]
    assert _subject(root) == f"flotilla: merge {branch}" and sh(root, "git", "status", "--porcelain") == ""
    assert merge_branch(repo, branch, base_branch="main", base_commit=base, squash=True) == head


def test_gc_removes_only_what_crashed_runs_left(tmp_path):
    root = make_repo(tmp_path / "r")
    repo = open_repo(root)
    store = SQLiteStore(tmp_path / "s.db")
    base = resolve_commit(repo, "HEAD")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed = store.create_run("race", "crashed")
    store.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, crashed))
    child = store.create_run("agent", parent_id=crashed)
    store.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, child))
    alive = store.create_run("race", "still running")  # this process: alive
    finished = store.create_run("race", "done")
    store.finish_run(finished, "done")
    for run in (crashed, alive, finished):
        create_worktree(repo, run, "a1", base)
    # a half-made worktree folder git never registered
    (root / ".flotilla/worktrees" / crashed / "a2").mkdir(parents=True)
    report = collect_garbage(repo, store)
    assert report.crashed_runs == [crashed]
    assert sorted(report.removed_branches) == [f"flotilla/{crashed}/a1"]
    assert len(report.removed_worktrees) == 2
    left = branches(root)
    assert f"flotilla/{alive}/a1" in left and f"flotilla/{finished}/a1" in left
    assert f"flotilla/{crashed}/a1" not in left and not (root / ".flotilla/worktrees" / crashed).exists()
    assert store.get_run(crashed)["status"] == "failed" and store.get_run(child)["status"] == "failed"
    assert report.kept == {alive: "running", finished: "finished"}
    assert collect_garbage(repo, store).crashed_runs == []
