"""Keeps a stdio MCP server from outliving the flotilla process that started it, even after ``kill -9``.

Run as ``python -I -S _mcp_guard.py COMMAND ARGS...`` (a file, not a module: it imports only the
standard library, so it starts in milliseconds). The SDK starts it as the leader of a new process
group; it forks the server into that group, with the pipes the SDK gave it, and waits. When the
server exits, so does the guard, with its exit code. When flotilla dies without stopping it, the
kernel tells the guard (``PR_SET_PDEATHSIG`` on Linux; elsewhere the guard polls for its parent
changing, five times a second), and the guard ends the whole group: the server and whatever it
started (an ``npx`` server's node, say). The SDK's own stop signals the group and so reaches the
guard too.
"""

import os
import signal
import sys
import time

GRACE_S = 2.0
POLL_S = 0.2


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: _mcp_guard.py COMMAND [ARGS...]\n")
        return 2
    if os.getpgrp() != os.getpid():  # ending "our" group must never reach flotilla's own
        os.setpgid(0, 0)
    parent = os.getppid()
    told = _die_with_parent()
    if os.getppid() != parent:  # flotilla died before the guard could ask to be told
        return 1
    child = os.fork()
    if child == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"cannot start MCP server {argv[0]!r}: {exc}\n")
            os._exit(127)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda *_: _end_group(child))
    if told:  # the kernel signals us when flotilla dies: just wait (signal handlers still run)
        return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) & 0xFF
    while True:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) & 0xFF
        if os.getppid() != parent:
            _end_group(child)
        time.sleep(POLL_S)


def _die_with_parent() -> bool:
    """Asks the kernel for SIGTERM when the parent dies; False where it cannot (the wait loop then polls)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _end_group(child: int) -> None:
    """SIGTERM to the group, SIGKILL to whatever is left after the grace period, then exit."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    group = os.getpgrp()
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        try:
            if os.waitpid(child, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            break
        time.sleep(0.02)
    _signal_group(group, signal.SIGKILL)  # the guard goes with it


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
