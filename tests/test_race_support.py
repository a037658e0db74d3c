"""Helpers shared by the race and workspace tests: real git repositories in temp folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CALC = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider -p no:asyncio"
# the races' check: the same test without pytest's start-up time, so the tests stay fast
CHECK = f"{sys.executable} -B -c 'from calc import add; assert add(2, 3) == 5, add(2, 3)'"


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, *, branch: str = "main") -> Path:
    """A tiny Python project with one failing test, committed on ``branch``."""
    path.mkdir(parents=True, exist_ok=True)
    sh(path, "git", "init", "-q", "-b", branch)
    sh(path, "git", "config", "user.name", "Test")
    sh(path, "git", "config", "user.email", "test@example.com")
    (path / "calc.py").write_text(CALC)
    (path / "test_calc.py").write_text(TEST)
    (path / ".gitignore").write_text("__pycache__/\n.env\n")
    sh(path, "git", "add", "-A")
    sh(path, "git", "commit", "-q", "-m", "init")
    return path


def branches(repo: Path) -> list[str]:
    return sh(repo, "git", "for-each-ref", "--format=%(refname:short)", "refs/heads/").splitlines()


def worktrees(repo: Path) -> list[str]:
    return [line[9:] for line in sh(repo, "git", "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


def alive(pid: int) -> bool:
    """True when ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone, or going between the open and the read
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
