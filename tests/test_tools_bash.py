"""Bash with real subprocesses: output, exit codes, the cap, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from flotilla.agents.tools import Bash, ToolContext


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child may linger as a zombie until its parent (init) reaps it
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going between the open and the read
        return False


async def _gone(pid: int, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_runs_in_the_workspace_with_combined_output(tmp_path: Path) -> None:
    out = await Bash().call({"command": "pwd; echo err >&2", "description": "Show folder"}, ToolContext(root=tmp_path))
    assert not out.is_error
    assert out.content.splitlines() == [str(tmp_path.resolve()), "err"]


async def test_nonzero_exit_code_is_reported_as_an_error(tmp_path: Path) -> None:
    out = await Bash().call({"command": "echo partial; exit 7"}, ToolContext(root=tmp_path))
    assert out.is_error
    assert out.content == "partial\nExit code 7"
    quiet = await Bash().call({"command": "true"}, ToolContext(root=tmp_path))
    assert quiet.content == "(no output)" and not quiet.is_error


async def test_output_is_capped_keeping_head_and_tail(tmp_path: Path) -> None:
    command = "echo FIRST; head -c 200000 /dev/zero | tr '\\0' x; echo; echo LAST"
    out = await Bash(output_limit=1000).call({"command": command}, ToolContext(root=tmp_path))
    assert out.content.startswith("FIRST\n") and out.content.endswith("LAST")
    assert "characters of output omitted" in out.content
    assert len(out.content) < 1200


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    command = "sleep 60 & echo $! > child.pid; echo started; sleep 60"
    started = time.monotonic()
    out = await Bash().call({"command": command, "timeout": 1000}, ToolContext(root=tmp_path))
    assert time.monotonic() - started < 5
    assert out.is_error and "timed out" in out.content and "started" in out.content
    child = int((tmp_path / "child.pid").read_text())
    assert await _gone(child), "the background child outlived the timeout"


async def test_background_children_do_not_hold_the_call_open(tmp_path: Path) -> None:
    started = time.monotonic()
    out = await Bash().call({"command": "sleep 60 & echo $! > child.pid; echo done"}, ToolContext(root=tmp_path))
    assert time.monotonic() - started < 5 and out.content == "done"
    assert await _gone(int((tmp_path / "child.pid").read_text()))


async def test_cancellation_kills_the_group_and_propagates(tmp_path: Path) -> None:
    task = asyncio.create_task(
        Bash().call({"command": "sleep 60 & echo $! > child.pid; sleep 60"}, ToolContext(root=tmp_path))
    )
    pid_file = tmp_path / "child.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _gone(int(pid_file.read_text()))


async def test_timeout_over_the_maximum_is_clamped_and_zero_refused(tmp_path: Path) -> None:
    bash = Bash(max_timeout_s=1)
    out = await bash.call({"command": "sleep 5", "timeout": 3_600_000}, ToolContext(root=tmp_path))
    assert out.is_error and "timed out after 1 s" in out.content
    zero = await bash.call({"command": "true", "timeout": 0}, ToolContext(root=tmp_path))
    assert zero.is_error and "'timeout'" in zero.content


async def test_files_changed_come_from_git_status(tmp_path: Path) -> None:
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "tracked.txt").write_text("one\n")
    (tmp_path / "dirty.txt").write_text("already dirty\n")
    subprocess.run([*git, "add", "tracked.txt"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=tmp_path, check=True)
    out = await Bash().call(
        {"command": "echo two >> tracked.txt; mkdir -p sub; echo new > sub/new.txt"}, ToolContext(root=tmp_path)
    )
    assert out.files_changed == ["sub/new.txt", "tracked.txt"]
    reading = await Bash().call({"command": "cat tracked.txt"}, ToolContext(root=tmp_path))
    assert reading.files_changed == []


async def test_outside_a_repository_files_changed_stays_empty(tmp_path: Path) -> None:
    out = await Bash().call({"command": "echo x > f.txt"}, ToolContext(root=tmp_path))
    assert out.files_changed == [] and (tmp_path / "f.txt").exists()


async def test_api_keys_are_not_passed_to_the_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMEPROVIDER_API_KEY", "sk-secret")
    monkeypatch.setenv("H4_PLAIN_SETTING", "visible")
    command = "echo ${SOMEPROVIDER_API_KEY:-hidden} $H4_PLAIN_SETTING"
    out = await Bash().call({"command": command}, ToolContext(root=tmp_path))
    assert out.content == "hidden visible"
    opened = await Bash(hide_env=()).call({"command": command}, ToolContext(root=tmp_path))
    assert opened.content == "sk-secret visible"
