"""Running a check command (the project's own tests) in a workspace.

The command runs in its own process group so that a timeout or Ctrl-C kills
everything it started, not just the shell.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _reaper as reaper
from .sandbox import UNCONFINED, Sandbox

TAIL_CHARS = 4000

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|warnings?|deselected)")
_PYTEST_LINE = re.compile(r"^=*\s*(?:\d+ \w+(?:, )?)+.* in [\d.]+s.*$|^no tests ran in", re.M)


@dataclass
class CheckResult:
    """What a check said: exit code (None on timeout), the tail of its output, pytest's counts."""

    command: str
    exit_code: int | None
    tail: str
    duration_s: float
    timed_out: bool = False
    pytest: dict[str, int] = field(default_factory=dict)
    """pytest's summary counts (``passed``, ``failed``, ``errors`` …) when its summary line was found."""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def summary(self) -> str:
        """One short line: pytest's counts, else the exit code."""
        if self.timed_out:
            return f"timed out after {self.duration_s:.0f}s"
        if self.pytest:
            return ", ".join(f"{n} {k}" for k, n in self.pytest.items())
        return "ok" if self.passed else f"exit {self.exit_code}"

    def to_dict(self) -> dict[str, object]:
        return {"command": self.command, "exit_code": self.exit_code, "passed": self.passed,
                "summary": self.summary, "duration_s": round(self.duration_s, 3),
                "timed_out": self.timed_out, "pytest": self.pytest, "tail": self.tail[-1500:]}


def parse_pytest(output: str) -> dict[str, int]:
    """The counts on pytest's final summary line (``3 passed, 1 failed in 0.2s``), or {}."""
    lines = _PYTEST_LINE.findall(output)
    if not lines:
        return {}
    counts: dict[str, int] = {}
    for number, word in _PYTEST_COUNT.findall(lines[-1]):
        word = {"error": "errors", "warning": "warnings"}.get(word, word)
        counts[word] = counts.get(word, 0) + int(number)
    return counts


@dataclass
class ShellResult:
    """A finished shell command: exit code (None on timeout), all its output, how long it took."""

    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False


async def run_shell(command: str, cwd: Path, *, timeout: float, env: dict[str, str] | None = None,
                    sandbox: Sandbox | None = None) -> ShellResult:
    """Runs ``command`` through the shell in ``cwd``, in its own process group, confined by
    ``sandbox`` when one is given (``env`` then goes in beside its allow-listed environment).

    On timeout or cancellation the whole group is killed, so nothing it started
    outlives it; if flotilla itself is killed, the reaper kills it. The command's
    own failure is a result, never an exception.
    """
    start = time.monotonic()
    confined = (sandbox or UNCONFINED).command(["/bin/sh", "-c", command], cwd,
                                               {**(env or {}), "FLOTILLA_WORKSPACE": str(cwd)})
    proc = await asyncio.create_subprocess_exec(
        *confined.argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True, env=confined.env)
    timed_out = False
    reaper.track(proc.pid)
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        timed_out = True
        kill_group(proc.pid)
        output, _ = await proc.communicate()
    except BaseException:  # cancelled (Ctrl-C, budget): leave nothing running behind us
        kill_group(proc.pid)
        raise
    finally:
        reaper.untrack(proc.pid)
    text = strip_ansi(output.decode(errors="replace"))
    return ShellResult(exit_code=None if timed_out else proc.returncode, output=text,
                       duration_s=time.monotonic() - start, timed_out=timed_out)


async def run_check(command: str, cwd: Path, *, timeout: float = 600.0, env: dict[str, str] | None = None,
                    sandbox: Sandbox | None = None) -> CheckResult:
    """Runs a check command in ``cwd`` (confined by ``sandbox``, if any); never raises for the command's
    own failure."""
    done = await run_shell(command, cwd, timeout=timeout, env=env, sandbox=sandbox)
    return CheckResult(command=command, exit_code=done.exit_code, tail=done.output[-TAIL_CHARS:],
                       duration_s=done.duration_s, timed_out=done.timed_out, pytest=parse_pytest(done.output))


def strip_ansi(text: str) -> str:
    """Text without terminal colour and cursor codes: what a tool printed for a terminal, made fit to
    store and to show anywhere (a log, a table, a browser)."""
    return _ANSI.sub("", text)


def kill_group(pid: int) -> None:
    """Kills a process group started with ``start_new_session``; gone already is fine."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
