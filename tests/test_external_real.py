"""The real CLIs as race workers, on the fake provider through flotilla's gateway: Claude Code (Messages),
Codex CLI (Responses), Gemini CLI (Gemini) and aider (Chat Completions) each fix a failing test with the
built-in template, the winner is merged, the race shows non-zero tokens and cost, and the diff holds
nothing the CLI wrote for itself.

Needs the CLIs: on PATH, or their paths in ``FLOTILLA_TEST_CLAUDE``, ``FLOTILLA_TEST_CODEX``,
``FLOTILLA_TEST_GEMINI`` and ``FLOTILLA_TEST_AIDER`` (``.ci/run`` installs them into a cache folder).
A CLI that is not installed has its test skipped, with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from flotilla import Session
from flotilla.store import SQLiteStore
from flotilla.testing.fake_provider import FakeProvider
from test_race_support import CHECK, make_repo, sh

FIX = "sed -i 's/a - b/a + b/' calc.py"
EDIT = "calc.py\n```python\ndef add(a, b):\n    return a + b\n```\n"  # aider's "whole" edit format
CLIS = {  # agent: (program, its variable, the tool call that fixes calc.py through the CLI's own shell tool)
    "claude-code": ("claude", "FLOTILLA_TEST_CLAUDE", {"name": "Bash", "input": {"command": FIX,
                                                                                  "description": "fix add"}}),
    "codex": ("codex", "FLOTILLA_TEST_CODEX", {"name": "exec_command", "input": {"cmd": FIX}}),
    "gemini": ("gemini", "FLOTILLA_TEST_GEMINI", {"name": "run_shell_command",
                                                  "input": {"command": FIX, "description": "fix add"}}),
    "aider": ("aider", "FLOTILLA_TEST_AIDER", None),
}


def program(agent: str) -> str | None:
    name, variable, _ = CLIS[agent]
    return os.environ.get(variable) or shutil.which(name)


def fake_model(agent: str):
    """The fake model behind the CLI: once its shell tool is offered, fix calc.py with it; after the
    tool's result, say it is done (aider, which has no tools, gets a whole-file edit instead)."""
    call = CLIS[agent][2]

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        if call is None:
            return {"text": EDIT}  # aider adds the file it names to the chat, asks again, then applies it
        if messages and messages[-1].get("role") == "tool":
            return {"text": "Fixed add; the check passes."}
        names = {(t.get("function") or t).get("name") for t in body.get("tools") or []}
        if call["name"] in names:
            return {"tool_use": call}
        return {"text": "{}" if body.get("response_format") else "ok"}

    return answer


@pytest.mark.parametrize("agent", list(CLIS))
def test_a_real_cli_fixes_the_test_through_the_gateway_and_is_merged(tmp_path, monkeypatch, agent) -> None:
    found = program(agent)
    if not found:
        pytest.skip(f"{CLIS[agent][0]} is not installed (set {CLIS[agent][1]})")
    monkeypatch.setenv("PATH", f"{Path(found).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KEY", "sk-upstream")
    with FakeProvider({"gpt-test": fake_model(agent)}) as fp:
        repo = make_repo(tmp_path / "r")
        (repo / "flotilla.toml").write_text(
            f'[providers.fakeoai]\nkind = "openai"\nbase_url = "{fp.url}/v1"\napi_key_env = "FAKE_KEY"\n\n'
            '[models."fakeoai:gpt-test"]\ninput = 2.0\noutput = 10.0\n')
        sh(repo, "git", "add", "-A")
        sh(repo, "git", "commit", "-qm", "configure")
        store = SQLiteStore(tmp_path / "store.db")
        session = Session(project=repo, durable=False, store=store)
        outcome = session.race_sync("- make add add its arguments (a Markdown bullet, not an option)", check=CHECK,
                                    models=["fakeoai:gpt-test"], agent=agent, attempt_timeout_s=240)
        attempt = outcome.attempts[0]
        ran = store.events(attempt.run_id, "ExternalRan")
        assert outcome.winner is not None and outcome.merged, (attempt.error, ran and ran[0]["output"][-3000:])
        assert fp.count() > 0
    assert attempt.input_tokens > 0 and attempt.output_tokens > 0 and (attempt.cost_usd or 0) > 0
    assert sh(repo, "git", "diff", "--name-only", outcome.base_commit, "HEAD").split() == ["calc.py"]
    assert "return a + b" in (repo / "calc.py").read_text()
    assert ran[0]["metered"] and ran[0]["exit_code"] == 0
    if agent != "aider":  # their structured output became the transcript, the tool call in it
        said = store.events(attempt.run_id, "MessageAdded")
        assert any(isinstance(b, dict) and b.get("type") == "tool_use" for m in said for b in m["message"]["content"])
