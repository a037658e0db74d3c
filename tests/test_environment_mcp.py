"""MCP servers from .mcp.json and agent files, through the official SDK: a real PyPI server (mcp-server-time),
a server that exits at once, streamable HTTP on loopback, `tools:` by tool or server, no orphans after kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flotilla.agents import parse_agent
from flotilla.agents.environment import Environment
from flotilla.events import McpServerFailed, McpServerStarted, ToolCalled, ToolDenied
from flotilla.testing import ScriptedModel, reply, tool_call, tool_calls

from test_runtime_support import results_in, run, spec, tool_names

TIME_SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
CONVERT = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}


def _project(root: Path, servers: dict[str, Any], **settings: Any) -> Path:
    (root / ".git").mkdir(parents=True)
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
    if settings:
        (root / ".claude").mkdir()
        (root / ".claude" / "settings.json").write_text(json.dumps(settings))
    return root


async def test_a_pypi_server_from_mcp_json_answers_a_scripted_call(tmp_path: Path) -> None:
    root = _project(tmp_path, {"time": TIME_SERVER}, permissions={"deny": ["mcp__time__get_current_time"]})
    model = ScriptedModel([tool_calls(("mcp__time__convert_time", CONVERT),
                                      ("mcp__time__get_current_time", {"timezone": "UTC"})),
                           reply("it is 21:00 in Tokyo")], name="scripted:exec")
    result, store, sink = await run(spec(), "what time is noon UTC in Tokyo?", root, {"scripted:exec": model})

    offered = {t.name: t for t in model.calls[0].tools or []}
    assert {"mcp__time__convert_time", "Read", "Bash"} <= set(offered)
    assert "mcp__time__get_current_time" not in offered  # a bare deny takes the tool away altogether
    schema = offered["mcp__time__convert_time"].input_schema
    assert schema["required"] == ["source_timezone", "time", "target_timezone"]
    assert set(schema["properties"]) == {"source_timezone", "time", "target_timezone"}
    converted, denied = results_in(model.calls[1])
    assert not converted.is_error
    answer = json.loads(converted.text())
    assert answer["target"]["timezone"] == "Asia/Tokyo" and answer["target"]["datetime"].endswith("T21:00:00+09:00")
    assert answer["time_difference"] == "+9.0h"
    assert denied.is_error and "mcp__time__get_current_time" in denied.text()
    # Recorded like any tool call; the server's start is an event too.
    assert [e.tool for e in sink.of(ToolCalled)] == ["mcp__time__convert_time"]
    assert [e.tool for e in sink.of(ToolDenied)] == ["mcp__time__get_current_time"]
    started = sink.of(McpServerStarted)
    assert [(s.server, sorted(s.tools)) for s in started] == [
        ("time", ["mcp__time__convert_time", "mcp__time__get_current_time"])]
    assert [e["tool"] for e in store.events(result.run_id, "ToolCalled")] == ["mcp__time__convert_time"]
    assert result.stop_reason == "end_turn"


async def test_a_server_that_exits_at_once_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    broken = {"command": sys.executable, "args": ["-c", "import sys; sys.stderr.write('no token configured\\n'); "
                                                        "sys.exit(3)"]}
    root = _project(tmp_path, {"broken": broken, "missing": {"command": "no-such-mcp-server-here"}})
    model = ScriptedModel([tool_call("Write", {"file_path": "a.txt", "content": "still working"}), reply("done")],
                          name="scripted:exec")
    result, store, sink = await run(spec(), "work", root, {"scripted:exec": model})

    assert result.stop_reason == "end_turn" and (root / "a.txt").read_text() == "still working"
    failed = {f.server: f for f in sink.of(McpServerFailed)}
    assert set(failed) == {"broken", "missing"}
    assert "no token configured" in failed["broken"].stderr
    assert "no-such-mcp-server-here" in failed["missing"].stderr
    assert {e["server"] for e in store.events(result.run_id, "McpServerFailed")} == {"broken", "missing"}
    assert "# MCP servers not available" in model.calls[0].system and "- broken:" in model.calls[0].system
    assert not any(n.startswith("mcp__") for n in tool_names(model.calls[0]))


async def test_an_agent_that_may_not_use_a_server_does_not_start_it(tmp_path: Path) -> None:
    root = _project(tmp_path, {"time": TIME_SERVER})
    model = ScriptedModel([reply("ok")], name="scripted:exec")
    _, _, sink = await run(spec(tools=["Read", "Edit"]), "x", root, {"scripted:exec": model})
    assert sink.of(McpServerStarted) == [] and sink.of(McpServerFailed) == []
    assert tool_names(model.calls[0]) == ["Read", "Edit"]


def test_tools_name_one_mcp_tool_or_a_whole_server(tmp_path: Path) -> None:
    env = Environment.load(_project(tmp_path, {}))
    tools = dict.fromkeys(["mcp__git__git_status", "mcp__git__git_push", "mcp__time__convert_time"])
    one = parse_agent("---\nname: a\ntools: Read, mcp__git__git_status\n---\n", source="a.md")
    server = parse_agent("---\nname: b\ntools: [Read, mcp__git]\ndisallowedTools: mcp__git__git_push\n---\n",
                         source="b.md")
    by_field = parse_agent("---\nname: c\ntools: Read\nmcpServers: [time]\n---\n", source="c.md")
    assert env.allowed(one, tools) == {"mcp__git__git_status"}
    assert env.allowed(server, tools) == {"mcp__git__git_status"}
    assert env.allowed(by_field, tools) == {"mcp__time__convert_time"}
    assert env.allowed(spec(), tools) == set(tools)
    assert not one.warnings


async def test_an_agents_inline_server_starts_for_that_agent_alone(tmp_path: Path) -> None:
    root = _project(tmp_path, {})
    helper = parse_agent("---\nname: helper\nmcpServers:\n  - clock:\n      command: " + sys.executable
                         + "\n      args: [-m, mcp_server_time, --local-timezone, UTC]\n---\nYou are helper.\n",
                         source="helper.md")
    model = ScriptedModel([tool_call("Agent", {"prompt": "convert", "subagent_type": "helper"}),
                           tool_call("mcp__clock__convert_time", CONVERT), reply("21:00"), reply("parent done")],
                          name="scripted:exec")
    result, _, sink = await run(spec(), "delegate", root, {"scripted:exec": model}, agents={"helper": helper})

    parent_first, child_first, child_second, _ = model.calls
    assert "mcp__clock__convert_time" not in tool_names(parent_first)
    assert "mcp__clock__convert_time" in tool_names(child_first)
    assert "+09:00" in results_in(child_second)[0].text()
    assert [s.server for s in sink.of(McpServerStarted)] == ["clock"] and result.stop_reason == "end_turn"


HTTP_SERVER = '''
import sys
import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("sums")

@server.tool()
def add(a: int, b: int) -> str:
    """Adds two numbers."""
    return f"the sum is {a + b}"

app = server.streamable_http_app()

async def guarded(scope, receive, send):
    headers = dict(scope.get("headers") or [])
    if scope["type"] == "http" and headers.get(b"authorization") != b"Bearer t0ken":
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})
        return
    await app(scope, receive, send)

uvicorn.run(guarded, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


@pytest.fixture
def http_server(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "http_server.py"
    script.write_text(HTTP_SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


async def test_a_streamable_http_server_with_headers_from_the_environment(tmp_path: Path, http_server: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMS_TOKEN", "t0ken")
    root = _project(tmp_path / "repo", {
        "sums": {"type": "http", "url": http_server, "headers": {"Authorization": "Bearer ${SUMS_TOKEN}"}},
        "refused": {"type": "http", "url": http_server}})
    model = ScriptedModel([tool_call("mcp__sums__add", {"a": 2, "b": 40}), reply("42")], name="scripted:exec")
    _, _, sink = await run(spec(), "add", root, {"scripted:exec": model})

    assert results_in(model.calls[1])[0].text() == "the sum is 42"
    assert [f.server for f in sink.of(McpServerFailed)] == ["refused"]
    assert "mcp__sums__add" in tool_names(model.calls[0])


DRIVER = '''
import sys
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.testing.registry import register_scripted

register_scripted("sleeper", lambda: ScriptedModel([
    tool_call("mcp__time__get_current_time", {"timezone": "UTC"}),
    tool_call("Bash", {"command": "echo up > up.txt; sleep 120"}), reply("woke")]))
from flotilla.cli.main import main
sys.argv = ["flotilla", *sys.argv[1:]]
main()
'''


def _servers_in(root: Path) -> list[int]:
    """Processes of the time server (its guard, its own child) running in ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            mine = b"mcp_server_time" in cmdline or cmdline.startswith(b"sleep 301")
            if mine and Path(os.readlink(entry / "cwd")) == root.resolve():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc to find the server's processes")
def test_kill_9_of_flotilla_leaves_no_mcp_server_behind(tmp_path: Path) -> None:
    # The server leaves a child of its own running (as an npx-started server leaves node): stdin closing
    # at flotilla's death would not end that one; the guard ends the server's whole process group.
    launcher = {"command": "sh", "args": ["-c", f"sleep 301 & exec {sys.executable} -m mcp_server_time "
                                                "--local-timezone UTC"]}
    root = _project(tmp_path / "repo", {"time": launcher})
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db"), "HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, str(driver), "run", "general-purpose", "wait", "--model",
                             "scripted:sleeper", "--json"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not (root / "up.txt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        assert _servers_in(root), "the time server should be running while the agent works"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 15  # the guard ends the group within its grace period
        while _servers_in(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _servers_in(root) == []
    finally:
        try:  # the Bash tool's sleep, in flotilla's own group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_mcp_json_expands_variables_skips_disabled_servers_and_names_what_is_wrong(tmp_path: Path) -> None:
    from flotilla.agents.mcp_config import load_project_servers
    from flotilla.errors import ConfigError

    root = _project(tmp_path, {"a": {"command": "${TOOL_BIN:-srv}", "args": ["--key", "${A_KEY}"]},
                               "off": {"command": "x"},
                               "web": {"type": "http", "url": "http://127.0.0.1:${PORT:-9}/mcp"}})
    servers = load_project_servers(root, environ={"A_KEY": "k1"}, disabled=["off"])
    assert sorted(servers) == ["a", "web"]
    assert (servers["a"].command, servers["a"].args, servers["a"].cwd) == ("srv", ["--key", "k1"], root.resolve())
    assert servers["web"].url == "http://127.0.0.1:9/mcp"
    with pytest.raises(ConfigError) as missing:
        load_project_servers(root, environ={})
    assert missing.value.key == "mcpServers.a.args[1]" and "A_KEY" in missing.value.fix
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": {"s": {"type": "sse", "url": "http://x"}}}))
    with pytest.raises(ConfigError) as kind:
        load_project_servers(root, environ={})
    assert (kind.value.file, kind.value.key) == (str(root.resolve() / ".mcp.json"), "mcpServers.s.type")
    (root / ".claude").mkdir()
    (root / ".claude" / "settings.json").write_text(json.dumps({"disabledMcpjsonServers": ["s"]}))
    assert Environment.load(root).servers == {}


PROBE_SERVER = '''
import os, sys
from pathlib import Path
from mcp.server.mcpserver import MCPServer

server = MCPServer("probe")

@server.tool()
def probe() -> str:
    """Tries to write outside the workspace and reads a secret from the environment."""
    try:
        Path(sys.argv[1]).write_text("escaped")
        wrote = "wrote"
    except OSError as exc:
        wrote = f"refused: {type(exc).__name__}"
    return f"{wrote}; secret={os.environ.get('AWS_SECRET_ACCESS_KEY', 'absent')}"

server.run()
'''


@pytest.mark.skipif(not __import__("shutil").which("bwrap"), reason="needs bubblewrap (.ci/run installs it)")
async def test_a_stdio_server_runs_inside_the_sandbox_when_it_is_on(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    outside = tmp_path / "outside.txt"
    (tmp_path / "probe.py").write_text(PROBE_SERVER)
    root = _project(tmp_path / "w", {"probe": {"command": sys.executable, "args": [str(tmp_path / "probe.py"),
                                                                                   str(outside)]}})
    (root / "flotilla.toml").write_text('[sandbox]\nmode = "required"\n')
    model = ScriptedModel([tool_call("mcp__probe__probe", {}), reply("probed")], name="scripted:exec")
    result, _, _ = await run(spec(), "probe", root, {"scripted:exec": model})
    (answer,) = results_in(model.calls[1])
    assert "refused" in answer.text() and "secret=absent" in answer.text(), answer.text()
    assert not outside.exists() and result.stop_reason == "end_turn"
