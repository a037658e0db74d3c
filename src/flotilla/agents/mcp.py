"""MCP servers for a run, through the official ``mcp`` SDK: started with the run, their tools offered, stopped at its end.

Each server's tools reach the model as ``mcp__<server>__<tool>`` with the server's own JSON
schema, and are called like every other tool: through the loop's seam (recorded, replayed by a
durable run), after its permission checks and hooks. A tool is read-only, and so offered to a
read-only run, only when the server marks it ``readOnlyHint``.

Each connection lives in a task of its own, because the SDK's client must be entered and left in
one task; calls from the loop's tasks go over its streams. A stdio server is started under
``_mcp_guard.py``, so it dies with flotilla even on ``kill -9``. A server that fails to start
(exits at once, does not answer, a bad URL) is reported with its stderr and the run goes on
without it. Time limits are Claude Code's variables: ``MCP_TIMEOUT`` (start-up) and
``MCP_TOOL_TIMEOUT`` (one call), in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import RunError
from .mcp_config import ServerConfig
from .tools.base import ToolContext, ToolOutput

log = logging.getLogger(__name__)

GUARD = Path(__file__).with_name("_mcp_guard.py")
MAX_NAME = 64
"""Tool names longer than this are refused by model APIs, so longer ones are cut."""
STDERR_TAIL = 2000


class McpStartFailed(RunError):
    """A server did not start; ``stderr`` holds the end of what it printed."""

    def __init__(self, server: str, reason: str, stderr: str = "") -> None:
        self.server, self.reason, self.stderr = server, reason, stderr
        super().__init__(f"MCP server {server!r} did not start: {reason}"
                         + (f"\n--- its stderr ---\n{stderr}" if stderr else ""))


def _ms_env(name: str, default_s: float) -> float:
    try:
        return float(os.environ[name]) / 1000
    except (KeyError, ValueError):
        return default_s


class McpConnection:
    """One running MCP server."""

    def __init__(self, config: ServerConfig, sandbox: Any = None) -> None:
        self.config = config
        self.sandbox = sandbox
        """A confined ``workspaces.sandbox.Sandbox`` runs a stdio server inside it, as the Bash tool's commands."""
        self.tools: list[McpTool] = []
        self.client: Any = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self._stderr_text = ""
        self.started_ms = 0.0

    async def start(self, timeout_s: float | None = None) -> None:
        """Starts the server and lists its tools; raises ``McpStartFailed`` with its stderr."""
        timeout_s = timeout_s if timeout_s is not None else _ms_env("MCP_TIMEOUT", 30.0)
        began = time.perf_counter()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._serve(ready), name=f"mcp:{self.config.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout_s)
        except Exception as exc:  # noqa: BLE001 - whatever the SDK or the server did, it is a failed start
            reason = (f"no answer within {timeout_s:g}s (MCP_TIMEOUT)" if isinstance(exc, TimeoutError)
                      else _reason(exc))
            await self.stop()  # stops the process first, so its stderr is complete
            raise McpStartFailed(self.config.name, reason, self._stderr_text) from None
        self.started_ms = (time.perf_counter() - began) * 1000

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        try:
            from mcp import Client

            async with _transport(self.config, self._stderr, self.sandbox) as target, Client(target) as client:
                listed, cursor = [], None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    listed += page.tools
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self.client = client
                self.tools = [McpTool(self, t) for t in listed]
                ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:  # noqa: BLE001 - reported to start(), or logged when the server dies mid-run
            self.client = None
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP server %r stopped: %s\n%s", self.config.name, _reason(exc), self.stderr())
        finally:
            if not ready.done():  # cancelled before it answered: start() must not wait out its timeout
                ready.set_exception(RuntimeError("the connection was closed before the server answered"))

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        if self.client is None:
            return ToolOutput(f"MCP server {self.config.name!r} is not running any more.\n{self.stderr()}".strip(),
                              is_error=True)
        try:
            result = await self.client.call_tool(name, arguments,
                                                 read_timeout_seconds=_ms_env("MCP_TOOL_TIMEOUT", 600.0))
        except Exception as exc:  # noqa: BLE001 - an MCP error is the model's to read
            return ToolOutput(f"MCP tool {name!r} of server {self.config.name!r} failed: {_reason(exc)}",
                              is_error=True)
        return ToolOutput(render_result(result), is_error=bool(result.is_error))

    async def stop(self) -> None:
        """Lets the SDK shut the server down (stdin closed, then its process group signalled), bounded."""
        self._stop.set()
        try:
            if self._task is not None and not self._task.done():
                await asyncio.wait_for(asyncio.shield(self._task), 10)
        except TimeoutError:
            self._task.cancel()
        except asyncio.CancelledError:  # our caller is cancelled: still end the connection, then go on cancelling
            if self._task is not None:
                self._task.cancel()
            raise
        finally:
            if not self._stderr.closed:
                self._stderr_text = self.stderr()
                self._stderr.close()

    def stderr(self) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-STDERR_TAIL:].strip()


class McpTool:
    """One tool of a server, with flotilla's ``Tool`` shape."""

    def __init__(self, connection: McpConnection, tool: Any) -> None:
        self.connection, self.remote_name = connection, tool.name
        self.name = (connection.config.prefix + tool.name)[:MAX_NAME]
        self.description = tool.description or f"{tool.name} (MCP server {connection.config.name})"
        self.input_schema: dict[str, Any] = tool.input_schema or {"type": "object"}
        self.read_only = bool(tool.annotations and tool.annotations.read_only_hint)

    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        return await self.connection.call(self.remote_name, input)


def render_result(result: Any) -> str:
    """An MCP tool result as the text the model reads: text blocks, resources, and a line for anything else."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{kind or 'unknown'} content ({getattr(block, 'mime_type', '') or 'no type'}) not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, indent=2, default=str))
    return "\n".join(parts) or "(the tool returned nothing)"


def _transport(config: ServerConfig, stderr: Any, sandbox: Any = None) -> Any:
    """An async context manager giving what ``mcp.Client`` connects to, owning any HTTP client it makes.
    A stdio server runs under the guard, and inside ``sandbox`` when the run's commands are confined."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def target():  # type: ignore[no-untyped-def]
        if config.type == "stdio":
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            argv = [sys.executable, "-I", "-S", str(GUARD), config.command, *config.args]
            env = config.env or None
            if sandbox is not None and sandbox.confined:
                confined = sandbox.command(argv, Path(config.cwd or "."), env=config.env or None)
                argv, env = confined.argv, confined.env
            params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=config.cwd)
            yield stdio_client(params, errlog=stderr)
            return
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        timeout = httpx2.Timeout(30.0, read=300.0)
        async with httpx2.AsyncClient(headers=config.headers, timeout=timeout) as http:
            yield streamable_http_client(config.url, http_client=http)

    return target()


def _reason(exc: BaseException) -> str:
    """The innermost messages of an exception (the SDK's task groups wrap them)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
