"""``Bash``: a shell command in the workspace, in its own process group.

The command runs as ``bash -c`` in a new session, so that on timeout, on
cancellation and when it finishes, the whole group it started (background jobs
included) can be killed at once and nothing outlives the call.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...events import SandboxDenied
from ...workspaces import _reaper as reaper
from ...workspaces.checks import kill_group, strip_ansi
from .base import ToolContext, ToolOutput
from .paths import inside
from .schema import ToolError, guarded

DRAIN_GRACE_S = 1.0
"""How long to keep reading after the command ends, for output still in the pipe."""

SECRET_ENV = ("*_API_KEY", "*_AUTH_TOKEN", "*_SECRET_KEY")
"""Environment variables the shell does not inherit: a command's output lands in the
transcript and the run store, and provider keys must never get there."""


class Bash:
    """Runs ``command`` with ``bash -c`` in the workspace root; ``timeout`` is in milliseconds."""

    name = "Bash"
    read_only = False
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to execute"},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "Optional timeout in milliseconds (max 600000)",
            },
            "description": {
                "type": "string",
                "description": "Clear, concise description of what this command does in 5-10 words",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    }

    def __init__(self, default_timeout_s: float = 120.0, max_timeout_s: float = 600.0,
                 output_limit: int = 30_000, hide_env: tuple[str, ...] = SECRET_ENV) -> None:
        self.hide_env = hide_env
        self.default_timeout_s = default_timeout_s
        self.max_timeout_s = max_timeout_s
        self.output_limit = output_limit
        self.description = (
            "Executes a bash command in the workspace root and returns its combined stdout and "
            "stderr, and its exit code.\n\n"
            f"- `timeout` is in milliseconds: default {default_timeout_s * 1000:.0f}, max "
            f"{max_timeout_s * 1000:.0f}. On timeout the command and every process it started are killed.\n"
            f"- Output over {output_limit} characters is cut in the middle (its start and end are kept).\n"
            "- Each call starts a fresh shell in the workspace root: `cd` and variables do not carry "
            "over. Background processes (`&`) are stopped when the command finishes.\n"
            "- API keys and tokens in the environment are not passed to the shell.\n"
            "- When the sandbox is on, only the workspace and /tmp are writable, the home folder is empty, "
            "`.git` is read-only and the network may be off; a refusal is said at the end of the output.\n"
            "- Prefer Read, Glob, Grep and Edit over cat, find, grep and sed."
        )

    @guarded
    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        timeout_s = self.default_timeout_s
        if input.get("timeout") is not None:
            timeout_s = min(float(input["timeout"]) / 1000.0, self.max_timeout_s)
        root = context.root.resolve()
        if not root.is_dir():
            raise ToolError(f"the workspace root {root} is not a directory")
        before = await _dirty_files(root)
        argv = ["bash", "-c", input["command"]]
        sandbox = context.sandbox if context.sandbox is not None and context.sandbox.confined else None
        if sandbox is not None:  # the allow-listed environment, inside bubblewrap
            confined = sandbox.command(argv, root)
            argv, env = confined.argv, confined.env
        else:
            env = {k: v for k, v in os.environ.items() if not any(fnmatch.fnmatchcase(k, p) for p in self.hide_env)}
        output, code, timed_out = await run_group(argv, root, timeout_s, self.output_limit, env)
        changed = await _changed_since(before, root) if before is not None else []
        output = strip_ansi(output).rstrip("\n")  # colour codes are noise to a model and in a transcript
        if sandbox is not None and (refused := sandbox.explain(confined, output, root)):
            for reason in refused:
                context.sink.emit(SandboxDenied(run_id=context.run_id, tool=self.name, reason=reason,
                                                command=input["command"][:300]))
            output = "\n".join([output, *refused]).lstrip("\n")
        if timed_out:
            text = (f"Command timed out after {timeout_s:g} s; it and every process it started "
                    f"were killed.\n{output}").rstrip()
            return ToolOutput(text, is_error=True, files_changed=changed)
        if code == 0:
            return ToolOutput(output or "(no output)", files_changed=changed)
        status = f"Exit code {code}" if code is not None and code >= 0 else f"Killed by signal {-(code or 0)}"
        return ToolOutput(f"{output}\n{status}".lstrip("\n"), is_error=True, files_changed=changed)


async def run_group(argv: Sequence[str], cwd: Path, timeout_s: float, limit: int,
                    env: dict[str, str] | None = None) -> tuple[str, int | None, bool]:
    """Runs ``argv`` (``bash -c …``, maybe inside the sandbox) in a new process group; returns
    (output, exit code, timed out).

    The group is killed when the shell ends, on timeout, on cancellation
    (which is then re-raised), and by the reaper if flotilla itself dies.
    """
    # our own pipe, not asyncio's: asyncio's wait() also waits for its pipes to close, which
    # a background child holding stdout would delay until it exits
    read_fd, write_fd = os.pipe()
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=write_fd, stderr=write_fd, start_new_session=True,
    ))
    try:
        # shielded: cancelled mid-spawn, asyncio would kill the shell but not its children
        proc = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await _stop(await spawn)
        pipe.close()
        raise
    except BaseException:
        pipe.close()
        raise
    finally:
        os.close(write_fd)
    reaper.track(proc.pid)
    try:
        return await _collect(proc, pipe, timeout_s, limit)
    finally:
        reaper.untrack(proc.pid)


async def _collect(proc: asyncio.subprocess.Process, pipe: Any, timeout_s: float,
                   limit: int) -> tuple[str, int | None, bool]:
    buffer = _Capped(limit)
    transport: asyncio.BaseTransport | None = None
    reader: asyncio.Task[None] | None = None
    timed_out = False
    try:
        stream = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), pipe
        )
        reader = asyncio.create_task(_pump(stream, buffer))
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except asyncio.TimeoutError:
            timed_out = True
        await _stop(proc)
        # a process that left the group (setsid) may hold the pipe open: stop waiting for it
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_GRACE_S)
    except asyncio.CancelledError:
        with contextlib.suppress(asyncio.CancelledError):
            await _stop(proc)
        raise
    finally:
        if reader is not None:
            reader.cancel()
        if transport is not None:
            transport.close()
        else:
            pipe.close()
    return buffer.text(), proc.returncode, timed_out


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Kills the process group of ``proc`` (background jobs included) and reaps the shell."""
    kill_group(proc.pid)
    await proc.wait()


async def _pump(stream: asyncio.StreamReader, buffer: _Capped) -> None:
    while chunk := await stream.read(65536):
        buffer.feed(chunk)
    buffer.feed(b"", final=True)


class _Capped:
    """Decoded output kept in bounded memory: the first and last ``limit // 2`` characters."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = ""
        self.tail = ""
        self.dropped = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final)
        if len(self.head) < self.half:
            take = self.half - len(self.head)
            self.head += text[:take]
            text = text[take:]
        if text:
            self.tail += text
            if len(self.tail) > self.half:
                self.dropped += len(self.tail) - self.half
                self.tail = self.tail[-self.half :]

    def text(self) -> str:
        if not self.dropped:
            return self.head + self.tail
        return f"{self.head}\n\n… [{self.dropped} characters of output omitted] …\n\n{self.tail}"


async def _git(root: Path, *args: str) -> str | None:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=root, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    return out.decode("utf-8", "surrogateescape") if proc.returncode == 0 else None


async def _dirty_files(root: Path) -> dict[Path, tuple[int, int] | None] | None:
    """The files git sees as changed or untracked, each with its (mtime, size); None outside a repo."""
    status = await _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
    if status is None:
        return None
    top = await _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    base = Path(top.strip())
    paths = [base / entry[3:] for entry in status.split("\0") if len(entry) > 3]
    return {p: _signature(p) for p in paths}


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


async def _changed_since(before: dict[Path, tuple[int, int] | None], root: Path) -> list[str]:
    """Workspace-relative paths the command touched: newly dirty, or dirty before and changed since."""
    after = await _dirty_files(root) or {}
    changed = {p for p in after if p not in before}
    changed |= {p for p, sig in before.items() if _signature(p) != sig}
    real_root = root.resolve()
    rels = []
    for path in changed:
        absolute = Path(os.path.normpath(path))
        if inside(absolute, real_root):
            rels.append(absolute.relative_to(real_root).as_posix())
    return sorted(rels)
