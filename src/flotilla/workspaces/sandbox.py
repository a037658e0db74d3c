"""The sandbox: an agent's commands confined to their worktree with bubblewrap (Linux).

Inside, the whole filesystem is read-only except the worktree and a private
``/tmp``; the user's home is an empty folder but for the paths
``[sandbox] read``/``write`` list; the worktree's ``.git`` (and flotilla's own
``.flotilla``) stay read-only, since flotilla makes the commits; ``/proc`` and
``/dev`` are minimal and ``/run`` (where daemons' sockets live) is empty; the
network is off unless ``network = "on"``, or open to ``allow_hosts`` only
through flotilla's proxy (``_proxy``); the environment is an allow-list, so a
secret in flotilla's environment never reaches a command; and
``--die-with-parent`` with a PID namespace of its own means nothing inside
outlives flotilla.

``SandboxConfig`` is the ``[sandbox]`` table; ``sandbox_for(settings)`` gives the
``Sandbox`` a run uses (it decides ``auto``/``required``/``off`` once); and
``Sandbox.command`` is the one function that turns a command into its confined
form. Any pattern confines a command the same way: get the run's ``Sandbox``,
ask it for ``command(argv, workdir)``, run what it returns.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import ConfigError, SandboxUnavailable
from . import _denials, _proxy

ENV_ALLOWED = ("PATH", "LANG", "LC_*", "TERM", "TZ")
"""What a confined command inherits of flotilla's environment, besides ``env_passthrough``."""
PROXY_SOCKET = "/run/flotilla/proxy.sock"
"""Where the proxy's socket appears inside the sandbox."""
PROTECTED = (".git", ".flotilla")
"""Folders of the worktree kept read-only inside: the repository, and flotilla's own state."""


class SandboxConfig(BaseModel):
    """``[sandbox]`` in flotilla.toml (``--sandbox`` on the command line sets ``mode``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "required", "off"] = "auto"
    """``auto``: confine when bubblewrap works, else run unconfined with a warning; ``required``: refuse
    to start without it; ``off``: never confine (recorded)."""
    network: Literal["off", "on"] = "off"
    """``off``: no network inside (except ``allow_hosts``); ``on``: the host's network."""
    allow_hosts: list[str] = []
    """With the network off, hosts reachable through flotilla's proxy (``pypi.org``, ``*.npmjs.org``)."""
    read: list[str] = []
    """Paths (``~`` allowed) visible read-only inside though the home folder is hidden: ``~/.cache/pip``."""
    write: list[str] = []
    """Paths writable inside besides the worktree: ``~/.cache/uv``."""
    env_passthrough: list[str] = []
    """Environment variables (``fnmatch`` patterns) passed in beside the allow-list."""
    checks: bool = False
    """Confine the race's ``--setup`` and ``--check`` commands too."""
    external: bool = False
    """Confine external agent CLIs too (otherwise they are left to their own sandboxes)."""


@dataclass
class Confined:
    """A command ready to run: its argv and environment, and the tag the proxy knows it by."""

    argv: list[str]
    env: dict[str, str]
    call: str = ""


@dataclass
class Sandbox:
    """What a run's commands are confined by; ``confined`` is False when they run as they are."""

    config: SandboxConfig
    confined: bool
    reason: str = ""
    """Why the commands are not confined (empty when they are)."""
    bwrap: str = "bwrap"
    home: Path = field(default_factory=lambda: Path.home().resolve())

    def record(self) -> dict[str, Any]:
        """The run's record of the sandbox (in its meta)."""
        return {"mode": self.config.mode, "confined": self.confined, "network": self.config.network,
                "allow_hosts": self.config.allow_hosts, "reason": self.reason}

    @property
    def warning(self) -> str | None:
        """The header line of a run that asked for ``auto`` and runs unconfined."""
        if self.confined or self.config.mode == "off":
            return None
        return f"sandbox unavailable, commands run unconfined: {self.reason}"

    def for_checks(self) -> Sandbox | None:
        return self if self.confined and self.config.checks else None

    def for_external(self) -> Sandbox | None:
        return self if self.confined and self.config.external else None

    def command(self, argv: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> Confined:
        """``argv`` as it runs in ``workdir``: inside bubblewrap when confined, else unchanged."""
        if not self.confined:
            return Confined(list(argv), {**os.environ, **(env or {})})
        workdir = Path(workdir).resolve()
        inner = {**confined_env(self.config, os.environ, self.home), **(env or {})}
        mounts = _mounts(self.config, workdir, self.home)
        call = ""
        if self.config.network == "off" and self.config.allow_hosts:
            proxy = _proxy.proxy_for(self.config.allow_hosts)
            call = uuid.uuid4().hex[:12]
            mounts.append(("--ro-bind", str(proxy.folder), str(Path(PROXY_SOCKET).parent)))
            argv = [os.path.realpath(sys.executable), "-I", "-S", "-c", _proxy.BRIDGE, PROXY_SOCKET, call, *argv]
            url = f"http://127.0.0.1:{_proxy.PORT}"
            inner.update({k: url for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")})
        mounts.sort(key=lambda m: len(Path(m[-1]).parts))  # a folder is mounted before what is inside it
        if ("--tmpfs", str(self.home)) in mounts:  # once what shows through it is mounted: read-only
            mounts.append(("--remount-ro", str(self.home)))
        share = ["--share-net"] if self.config.network == "on" else []
        return Confined([self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                         "--tmpfs", "/run", *[a for m in mounts for a in m], *_resolver(self.config),
                         "--unshare-all", *share, "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                         "--chdir", str(workdir), "--", *argv], inner, call)

    def explain(self, confined: Confined, output: str, workdir: Path) -> list[str]:
        """What the sandbox refused during one call, one readable sentence each: the proxy's refusals,
        and the writes, reads and connections the command's own errors show were refused."""
        refused = _proxy.proxy_for(self.config.allow_hosts).denials(confined.call) if confined.call else []
        return refused + [m for m in _denials.explain(
            output, Path(workdir).resolve(), self.home, network_off=self.config.network == "off",
            proxied=bool(confined.call), protected=PROTECTED) if m not in refused]


def confined_env(config: SandboxConfig, environ: dict[str, str] | os._Environ[str], home: Path) -> dict[str, str]:
    """The allow-listed environment: ``PATH``, ``LANG``/``LC_*``, ``TERM``, ``TZ``, ``env_passthrough``,
    ``HOME`` (empty inside, but for ``read``/``write``) and ``TMPDIR``; everything else, secrets included, is dropped."""
    patterns = (*ENV_ALLOWED, *config.env_passthrough)
    env = {k: v for k, v in environ.items() if any(fnmatchcase(k, p) for p in patterns)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=str(home), TMPDIR="/tmp")
    return env


def sandbox_for(settings: Any) -> Sandbox:
    """The sandbox ``[sandbox]`` asks for, decided once: confined, unconfined with a reason, or an error
    (``required`` and bubblewrap unusable)."""
    config = settings.section("sandbox", SandboxConfig) if settings is not None else SandboxConfig()
    if config.allow_hosts and config.network == "on":
        raise ConfigError(settings.origin("sandbox.allow_hosts"), "sandbox.allow_hosts",
                          "has no effect with network = \"on\" (every host is reachable)",
                          "remove allow_hosts, or set network = \"off\" to allow those hosts only")
    if config.mode == "off":
        return Sandbox(config, confined=False, reason="turned off (--sandbox off or [sandbox] mode)")
    bwrap = shutil.which("bwrap")
    problem = unusable(bwrap)
    if problem is None:
        return Sandbox(config, confined=True, bwrap=str(bwrap))
    if config.mode == "required":
        raise SandboxUnavailable(f"the sandbox is required ([sandbox] mode or --sandbox required) but {problem}")
    return Sandbox(config, confined=False, reason=problem)


@functools.cache
def unusable(bwrap: str | None) -> str | None:
    """Why bubblewrap cannot confine commands here (with the fix), or None when it can."""
    if not sys.platform.startswith("linux"):
        return (f"the sandbox needs Linux (bubblewrap) and this is {sys.platform}; "
                "use --sandbox off to say you accept unconfined commands")
    if bwrap is None:
        return ("bubblewrap is not installed (no `bwrap` on PATH): install it (apt-get install bubblewrap, "
                "dnf install bubblewrap, pacman -S bubblewrap), or use --sandbox off")
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
                            "--die-with-parent", "--cap-drop", "ALL", "--", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return (f"bwrap cannot create its namespaces here ({probe.stderr.strip() or f'exit {probe.returncode}'}): "
                "unprivileged user namespaces are probably blocked (Ubuntu 24.04: "
                "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor profile for bwrap; "
                "elsewhere `sysctl kernel.unprivileged_userns_clone=1`), or use --sandbox off")
    return None


def _mounts(config: SandboxConfig, workdir: Path, home: Path) -> list[tuple[str, ...]]:
    """What is laid over the read-only root and the empty /tmp and /run, before sorting by depth."""
    mounts: list[tuple[str, ...]] = []
    parent = workdir.parent
    if _within(parent, Path("/tmp")) and parent != Path("/tmp"):
        # the worktree's neighbours stay read-only, as they are everywhere else (writes fail, not vanish)
        mounts.append(("--ro-bind", str(parent), str(parent)))
    for tool in _toolchains(Path("/tmp")):  # flotilla itself and its venv, when they live under the empty /tmp
        mounts.append(("--ro-bind", tool, tool))
    if home != Path("/") and home.is_dir() and not _within(home, workdir):
        mounts.append(("--tmpfs", str(home)))  # the home folder: empty (and made read-only last)
        # but not the toolchains: the Python flotilla runs on (a venv links to it) and PATH's folders there
        for tool in _toolchains(home):
            mounts.append(("--ro-bind", tool, tool))
    mounts += [("--ro-bind-try", p, p) for p in _expand(config.read)]
    mounts += [("--bind-try", p, p) for p in _expand(config.write)]
    mounts.append(("--bind", str(workdir), str(workdir)))
    for name in PROTECTED:
        if (workdir / name).exists():
            mounts.append(("--ro-bind", str(workdir / name), str(workdir / name)))
    common = _git_common_dir(workdir)
    if common is not None and not _within(common, workdir):
        mounts.append(("--ro-bind", str(common), str(common)))  # git works inside a worktree, read-only
    return mounts


def _resolver(config: SandboxConfig) -> list[str]:
    """With the network on, /etc/resolv.conf may point into the now empty /run (systemd-resolved)."""
    resolv = Path("/etc/resolv.conf")
    if config.network == "on" and resolv.is_symlink():
        target = resolv.resolve()
        if _within(target, Path("/run")) and target.exists():
            return ["--ro-bind", str(target), str(target)]
    return []


def _git_common_dir(workdir: Path) -> Path | None:
    """The repository a worktree's ``.git`` file points to (its shared ``.git`` folder)."""
    dot_git = workdir / ".git"
    if not dot_git.is_file():
        return None
    text = dot_git.read_text(errors="replace")
    if not text.startswith("gitdir:"):
        return None
    gitdir = (workdir / text.split(":", 1)[1].strip()).resolve()
    common = gitdir / "commondir"
    if common.is_file():
        return (gitdir / common.read_text().strip()).resolve()
    return gitdir


def _expand(paths: list[str]) -> list[str]:
    return [str(Path(os.path.expanduser(p)).resolve()) for p in paths]


def _toolchains(home: Path) -> list[str]:
    """Folders under ``home`` (or /tmp) that commands need to run at all, shown read-only: the prefix of the
    Python flotilla runs on (pyenv's, say: a project's venv links to it), its venv, flotilla's own package
    (an MCP server's guard is in it) and the folders on ``PATH``."""
    found = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(__file__).resolve().parents[1]]
    found += [Path(p).resolve() for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    unique = dict.fromkeys(str(p) for p in found if p != home and _within(p, home) and p.is_dir())
    return list(unique)


def _within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or inside it."""
    return path == folder or folder in path.parents


UNCONFINED = Sandbox(SandboxConfig(mode="off"), confined=False, reason="not asked for")
"""Commands run as they are (``Sandbox.command`` returns them unchanged)."""
