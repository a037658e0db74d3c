"""Reading a confined command's errors for what the sandbox refused, in words a model can act on.

Inside bubblewrap a refused write is only ``Read-only file system``, a hidden
file is only ``No such file or directory`` and the network is only
``Network is unreachable``. Left like that, a model retries or works around
what looks like a broken machine. Each is recognised here and said plainly
("write outside the worktree refused by the sandbox: /home/u/x"), and only
when it is true: the path named must really be outside the worktree, the
hidden file must really exist outside the sandbox.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ERO = re.compile(r"'([^'\n]+)': Read-only file system|Read-only file system: '([^'\n]+)'"
                  r"|([^\s:'\"]+): Read-only file system")
_ENOENT = re.compile(r"'([^'\n]+)': No such file or directory|No such file or directory: '([^'\n]+)'"
                     r"|([^\s:'\"]+): No such file or directory")
_OFFLINE = re.compile(r"Network is unreachable|Temporary failure in name resolution|Could not resolve host"
                      r"|Name or service not known|No address associated with hostname")


def explain(output: str, workdir: Path, home: Path, *, network_off: bool, proxied: bool,
            protected: tuple[str, ...]) -> list[str]:
    """What the sandbox refused, one sentence each, as the output shows it."""
    said: list[str] = []

    def say(message: str) -> None:
        if message not in said:
            said.append(message)

    for path in _paths(_ERO, output, workdir):
        inner = _relative(path, workdir)
        if inner is not None and inner.split("/", 1)[0] in protected:
            say(f"write to {inner} refused by the sandbox: {inner.split('/', 1)[0]} is read-only inside "
                "(flotilla makes the commits)")
        elif inner is None:
            say(f"write outside the worktree refused by the sandbox: {path}")
    for path in _paths(_ENOENT, output, workdir):
        if (path == home or home in path.parents) and os.path.lexists(path):
            say(f"reading {path} refused by the sandbox: the home folder is hidden inside "
                "(list the path under [sandbox] read to allow it)")
    if network_off and _OFFLINE.search(output):
        where = (" except through its proxy to [sandbox] allow_hosts" if proxied else "")
        say(f"network access refused by the sandbox: the network is off inside{where} "
            "(set [sandbox] network = \"on\", or list the hosts under allow_hosts)")
    return said


def _paths(pattern: re.Pattern[str], output: str, workdir: Path) -> list[Path]:
    found = []
    for match in pattern.finditer(output):
        raw = next(g for g in match.groups() if g)
        found.append(Path(os.path.normpath(workdir / raw)))  # absolute stays absolute
    return found


def _relative(path: Path, workdir: Path) -> str | None:
    if path == workdir or workdir in path.parents:
        return path.relative_to(workdir).as_posix()
    return None
