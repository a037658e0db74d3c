"""kill -9 of flotilla while an agent's command is in flight: the command dies with it.

Each command runs in a process group of its own, so without the reaper a `Bash` call, a check or
an external agent CLI would keep running after flotilla is gone, and a resumed step would run
beside its first copy. The commands here fork (`sleep …; echo`), so killing only the shell would
not be enough either.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from test_durable_agent_upgrade import fake_project
from test_durable_race_crash import FLOTILLA, wait_for
from test_race_support import CHECK, alive, make_repo

from flotilla.workspaces.sandbox import unusable


def sleeper() -> tuple[str, str]:
    """A command that sleeps for a unique number of seconds (so its process can be found by its
    command line) and forks (the shell is not replaced by ``sleep``)."""
    seconds = f"{700 + uuid.uuid4().int % 10_000 / 7:.4f}"
    return f"sleep {seconds}; echo woke", seconds


def sleeping(seconds: str) -> list[int]:
    """Live processes running ``sleep SECONDS`` (zombies count as gone)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", seconds.encode()] and alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def kill_and_expect_gone(flotilla: subprocess.Popen, seconds: str) -> None:
    wait_for(lambda: sleeping(seconds) or flotilla.poll() is not None)
    assert flotilla.poll() is None, flotilla.communicate()
    flotilla.send_signal(signal.SIGKILL)
    flotilla.wait(timeout=10)
    wait_for(lambda: not sleeping(seconds), timeout=15)


@pytest.mark.parametrize("sandbox", ["off", "required"])
def test_a_bash_call_in_flight_dies_with_a_killed_flotilla_run(tmp_path: Path, sandbox: str) -> None:
    if sandbox == "required" and unusable(shutil.which("bwrap")):
        pytest.skip(f"the sandbox cannot work here: {unusable(shutil.which('bwrap'))}")
    command, seconds = sleeper()
    script = {"m1": [{"tool_uses": [{"name": "Bash", "input": {"command": command}}]}, {"text": "never"}]}
    with fake_project(tmp_path, script) as (_url, work, env):
        run = subprocess.Popen([FLOTILLA, "run", "implementer", "Sleep", "-m", "fake:m1", "--json",
                                "--sandbox", sandbox], cwd=work, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        kill_and_expect_gone(run, seconds)


def test_an_external_agent_and_a_check_die_with_a_killed_race(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    env_ = {"PATH": "/usr/bin:/bin"}
    for worker, check in (("cmd:" + sleeper()[0], CHECK), ("cmd:true", sleeper()[0])):
        seconds = (worker if worker != "cmd:true" else check).split()[1].rstrip(";")
        race = subprocess.Popen([FLOTILLA, "race", "sleep", "--agent", worker, "--check", check,
                                 "--no-durable",], cwd=repo, env={**env_, "HOME": str(tmp_path)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        kill_and_expect_gone(race, seconds)
