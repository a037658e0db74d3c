"""Nothing an agent started outlives flotilla, even after ``kill -9``.

The Bash tool, checks, setup commands and external agent CLIs each run in a
process group of their own (so a timeout can kill a whole tree). That same
isolation means a flotilla killed with ``SIGKILL`` leaves them running, and a
resumed step would then run beside its own first copy.

``PR_SET_PDEATHSIG`` does not cover it: it reaches only the direct child (a
shell's own children live on) and it fires when the *thread* that spawned the
child ends, not the process. So flotilla keeps one small watchdog process
instead, started on first use: it is told each process group as it starts and
ends, on a pipe only flotilla holds open. When flotilla dies, however it dies,
the kernel closes the pipe; the watchdog reads end-of-file and kills every
group still listed. It sits in its own session, so Ctrl-C and a signal sent to
flotilla's process group do not stop it before it has done its job.
"""

from __future__ import annotations

import subprocess
import sys
import threading

_WATCHDOG = r"""
import os, signal, sys
for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
    signal.signal(sig, signal.SIG_IGN)
groups = set()
for line in sys.stdin.buffer:
    line = line.strip()
    if line[:1] == b"+":
        groups.add(int(line[1:]))
    elif line[:1] == b"-":
        groups.discard(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_lock = threading.Lock()
_proc: subprocess.Popen[bytes] | None = None


def track(pgid: int) -> None:
    """Lists a process group to be killed if flotilla dies before ``untrack``."""
    _send(f"+{pgid}\n".encode())


def untrack(pgid: int) -> None:
    """The group has ended (or been killed): forget it, so a reused id is never killed."""
    _send(f"-{pgid}\n".encode())


def _send(line: bytes) -> None:
    global _proc
    with _lock:
        for _ in range(2):  # a watchdog that died (killed by hand) is started again once
            if _proc is None or _proc.poll() is not None:
                _proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
            try:
                assert _proc.stdin is not None
                _proc.stdin.write(line)
                _proc.stdin.flush()
                return
            except (BrokenPipeError, OSError):
                _proc = None
