"""The git plumbing of several machines, with a bare repository in a temp dir as the shared remote:
the base published, a worker's clone made once and fetched after, attempt branches pushed and fetched
back; every step safe to repeat."""

from __future__ import annotations

from pathlib import Path

from flotilla.workspaces import create_worktree, open_repo
from flotilla.workspaces.remote import fetch_attempts, publish_base, push_branch, worker_clone
from test_race_support import make_repo, sh


def setup(tmp_path: Path) -> tuple[Path, str, str]:
    remote = tmp_path / "remote.git"
    sh(tmp_path, "git", "init", "-q", "--bare", str(remote))
    repo = make_repo(tmp_path / "orchestrator")
    base = sh(repo, "git", "rev-parse", "HEAD")  # never pushed: publish_base must carry it
    return repo, f"file://{remote}", base


def test_a_worker_clones_once_works_on_the_base_and_its_branch_comes_back(tmp_path):
    repo, remote, base = setup(tmp_path)
    publish_base(open_repo(repo), remote, "r1", base)
    publish_base(open_repo(repo), remote, "r1", base)  # a step run twice

    cache = tmp_path / "cache"
    clone = worker_clone(remote, "r1", cache)
    assert worker_clone(remote, "r1", cache).root == clone.root  # fetched, not cloned again
    assert len(list(cache.iterdir())) == 1
    worktree = create_worktree(clone, "r1", "a1", base)
    (worktree.path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    commit = worktree.commit("a1's work")
    push_branch(clone, remote, worktree.branch)
    push_branch(clone, remote, worktree.branch)

    orchestrator = open_repo(repo)
    fetch_attempts(orchestrator, remote, "r1")
    fetch_attempts(orchestrator, remote, "r1")
    assert sh(repo, "git", "rev-parse", "flotilla/r1/a1") == commit
    assert "a + b" in sh(repo, "git", "show", "flotilla/r1/a1:calc.py")
    # the published base is the remote's business, not a branch left in the user's repository
    assert sh(repo, "git", "branch", "--list", "flotilla/r1/base") == ""


def test_fetching_a_race_with_no_branches_yet_is_not_an_error(tmp_path):
    repo, remote, base = setup(tmp_path)
    fetch_attempts(open_repo(repo), remote, "nothing-yet")
    assert sh(repo, "git", "branch", "--list", "flotilla/*") == ""
