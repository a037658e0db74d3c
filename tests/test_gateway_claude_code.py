"""Claude Code itself (``claude -p``) through the gateway to an OpenAI-format backend, tools and all.

Needs the npm package ``@anthropic-ai/claude-code``: ``claude`` on PATH, or its path in
``FLOTILLA_TEST_CLAUDE``. Skipped otherwise (the tests never install anything).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import gateway

CLAUDE = os.environ.get("FLOTILLA_TEST_CLAUDE") or shutil.which("claude")
pytestmark = pytest.mark.skipif(not CLAUDE, reason="Claude Code is not installed (set FLOTILLA_TEST_CLAUDE)")


def backend(body: dict) -> dict:
    """The fake model: run one Bash command when asked for the file, then report."""
    last = [m for m in body["messages"] if m["role"] != "system"][-1]
    if last["role"] == "tool":
        return {"text": "I wrote hello.txt."}
    if body.get("tools") and "hello.txt" in json.dumps(last.get("content")):
        return {"tool_use": {"name": "Bash", "input": {"command": "echo hi > hello.txt",
                                                        "description": "write the file"}}}
    return {"text": "ok"}


def claude_env(tmp_path, url: str) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sk-unused", "HOME": str(tmp_path),
            "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}


def test_claude_code_runs_a_tool_using_session_through_the_gateway(tmp_path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    with FakeProvider({"gpt-test": backend}) as fp, gateway(tmp_path, fp.url, 'default = "fakeoai:gpt-test"\n') as gw:
        env = claude_env(tmp_path, gw.url)
        done = subprocess.run([CLAUDE, "-p", "create a file hello.txt containing hi", "--allowedTools", "Bash",
                               "--output-format", "json"], cwd=work, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout)
        assert result["result"] == "I wrote hello.txt." and result["num_turns"] == 2
        assert (work / "hello.txt").read_text().strip() == "hi"
        turns = [r.body for r in fp.received if r.path == "/v1/chat/completions"]
        assert turns[-1]["messages"][-1]["role"] == "tool"  # the tool result went back in OpenAI's shape
        assert all(row["status"] == 200 for row in gw.rows(len(turns)))


def test_claude_code_with_no_route_fails_at_once_instead_of_retrying(tmp_path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    with FakeProvider({}) as fp, gateway(tmp_path, fp.url, "", environ={}) as gw:
        done = subprocess.run([CLAUDE, "-p", "say hi"], cwd=work, env=claude_env(tmp_path, gw.url),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        rows = gw.rows(1)
        assert rows and all((r["status"], r["error"]) == (404, "not_found_error") for r in rows)
        assert len(rows) <= 3  # a 404 is not retried (a 500 was, ten times, in silence)
        assert fp.count() == 0
