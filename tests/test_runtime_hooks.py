"""Hooks as Claude Code configures them, run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flotilla.agents.hooks import Hooks
from flotilla.config import load_settings
from flotilla.errors import ConfigError
from flotilla.events import ToolCalled, ToolDenied
from flotilla.testing import ScriptedModel, reply, tool_call

from test_runtime_support import results_in, run, settings_for, spec


def _script(root: Path, name: str, body: str) -> str:
    """A Python hook script in the workspace; returns the command that runs it."""
    path = root / name
    path.write_text("import json, sys\nevent = json.load(sys.stdin)\n" + body)
    return f"{sys.executable} {path}"


def _claude_settings(root: Path, hooks: dict[str, Any]) -> None:
    (root / ".claude").mkdir(exist_ok=True)
    (root / ".claude" / "settings.json").write_text(json.dumps({"hooks": hooks}))


def _rule(command: str, matcher: str = "") -> list[dict[str, Any]]:
    return [{"matcher": matcher, "hooks": [{"type": "command", "command": command}]}]


async def test_exit_2_blocks_the_call_and_stderr_goes_to_the_model(tmp_path: Path) -> None:
    command = _script(tmp_path, "guard.py", (
        "open('seen.json', 'w').write(json.dumps(event))\n"
        "if 'rm ' in event['tool_input']['command']:\n"
        "    sys.stderr.write('rm is not allowed here'); sys.exit(2)\n"))
    _claude_settings(tmp_path, {"PreToolUse": _rule(command, "Bash")})
    (tmp_path / "keep.txt").write_text("precious")
    model = ScriptedModel([tool_call("Bash", {"command": "rm keep.txt"}), reply("ok")], name="scripted:exec")
    result, _, sink = await run(spec(), "clean up", tmp_path, {"scripted:exec": model})

    assert (tmp_path / "keep.txt").read_text() == "precious"
    blocked = results_in(model.calls[1])[0]
    assert blocked.is_error and "rm is not allowed here" in blocked.text()
    assert sink.of(ToolCalled) == [] and "rm is not allowed here" in sink.of(ToolDenied)[0].reason
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert (seen["hook_event_name"], seen["tool_name"], seen["tool_input"], seen["session_id"]) == (
        "PreToolUse", "Bash", {"command": "rm keep.txt"}, result.run_id)


async def test_the_matcher_picks_the_tools(tmp_path: Path) -> None:
    _claude_settings(tmp_path, {"PreToolUse": _rule(_script(tmp_path, "no.py", "sys.exit(2)"), "Edit|Write")})
    model = ScriptedModel([tool_call("Bash", {"command": "echo hi > a.txt"}), reply("ok")], name="scripted:exec")
    await run(spec(), "x", tmp_path, {"scripted:exec": model})
    assert (tmp_path / "a.txt").read_text() == "hi\n"


async def test_permission_decision_deny_from_flotilla_toml(tmp_path: Path) -> None:
    command = _script(tmp_path, "deny.py", (
        "print(json.dumps({'hookSpecificOutput': {'hookEventName': 'PreToolUse', "
        "'permissionDecision': 'deny', 'permissionDecisionReason': 'writes need review'}}))\n"))
    settings = settings_for(tmp_path, hooks={"PreToolUse": _rule(command, "Write")})
    model = ScriptedModel([tool_call("Write", {"file_path": "w.txt", "content": "x"}), reply("ok")],
                          name="scripted:exec")
    await run(spec(), "x", tmp_path, {"scripted:exec": model}, settings=settings)
    assert not (tmp_path / "w.txt").exists()
    assert "writes need review" in results_in(model.calls[1])[0].text()


async def test_permission_decision_allow_does_not_override_the_runtime(tmp_path: Path) -> None:
    command = _script(tmp_path, "allow.py", (
        "print(json.dumps({'hookSpecificOutput': {'permissionDecision': 'allow'}}))\n"))
    _claude_settings(tmp_path, {"PreToolUse": _rule(command)})
    model = ScriptedModel([tool_call("Write", {"file_path": "w.txt", "content": "x"}), reply("ok")],
                          name="scripted:exec")
    await run(spec(), "x", tmp_path, {"scripted:exec": model}, read_only=True)
    assert not (tmp_path / "w.txt").exists()


async def test_updated_input_replaces_the_tools_input(tmp_path: Path) -> None:
    command = _script(tmp_path, "rewrite.py", (
        "new = dict(event['tool_input'], content=event['tool_input']['content'].upper())\n"
        "print(json.dumps({'hookSpecificOutput': {'permissionDecision': 'allow', 'updatedInput': new}}))\n"))
    _claude_settings(tmp_path, {"PreToolUse": _rule(command, "Write")})
    model = ScriptedModel([tool_call("Write", {"file_path": "w.txt", "content": "quiet\n"}), reply("ok")],
                          name="scripted:exec")
    _, _, sink = await run(spec(), "x", tmp_path, {"scripted:exec": model})
    assert (tmp_path / "w.txt").read_text() == "QUIET\n"
    assert sink.of(ToolCalled)[0].input["content"] == "QUIET\n"


async def test_post_tool_use_feedback_reaches_the_model(tmp_path: Path) -> None:
    command = _script(tmp_path, "lint.py", (
        "assert event['tool_response']['is_error'] is False\n"
        "sys.stderr.write('lint: trailing whitespace in ' + event['tool_input']['file_path']); sys.exit(2)\n"))
    _claude_settings(tmp_path, {"PostToolUse": _rule(command, "Write")})
    model = ScriptedModel([tool_call("Write", {"file_path": "w.txt", "content": "x \n"}), reply("ok")],
                          name="scripted:exec")
    await run(spec(), "x", tmp_path, {"scripted:exec": model})
    assert (tmp_path / "w.txt").exists()  # PostToolUse cannot undo; it tells the model
    assert "lint: trailing whitespace in w.txt" in results_in(model.calls[1])[0].text()


async def test_a_stop_hook_sends_the_agent_back_to_work_once(tmp_path: Path) -> None:
    command = _script(tmp_path, "stop.py", (
        "if not event['stop_hook_active']:\n"
        "    sys.stderr.write('run the tests before stopping'); sys.exit(2)\n"))
    _claude_settings(tmp_path, {"Stop": [{"hooks": [{"type": "command", "command": command}]}]})
    model = ScriptedModel([reply("done"), reply("tests pass, done")], name="scripted:exec")
    result, _, _ = await run(spec(), "x", tmp_path, {"scripted:exec": model})
    assert model.calls[1].messages[-1].text() == "[Stop hook] run the tests before stopping"
    assert (result.text, result.turns) == ("tests pass, done", 2)


async def test_subagent_stop_hooks_run_for_subagents_only(tmp_path: Path) -> None:
    command = _script(tmp_path, "sub.py", (
        "open('subagent-stopped.txt', 'a').write(event['last_assistant_message'] + '\\n')\n"))
    _claude_settings(tmp_path, {"SubagentStop": [{"hooks": [{"type": "command", "command": command}]}]})
    models = {"scripted:exec": ScriptedModel([tool_call("Agent", {"prompt": "hi", "subagent_type": "child"}),
                                              reply("parent done")], name="scripted:exec"),
              "scripted:child": ScriptedModel([reply("child done")], name="scripted:child")}
    await run(spec(), "x", tmp_path, models, agents={"child": spec("child", model="scripted:child")})
    assert (tmp_path / "subagent-stopped.txt").read_text() == "child done\n"


def test_malformed_hook_settings_name_the_file_and_key(tmp_path: Path) -> None:
    _claude_settings(tmp_path, {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "prompt"}]}]})
    with pytest.raises(ConfigError) as caught:
        Hooks.load(tmp_path, settings_for(tmp_path))
    assert "settings.json" in str(caught.value) and "hooks.PreToolUse[0].hooks[0]" in str(caught.value)


async def test_hooks_run_once_per_tool_call_in_a_worktree_of_the_project(tmp_path: Path) -> None:
    project, log = tmp_path / "project", tmp_path / "hook.log"
    project.mkdir()
    _claude_settings(project, {"PreToolUse": _rule(f"echo called >> {log}")})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "hooks"], cwd=project, check=True)
    worktree = tmp_path / "attempt"
    subprocess.run([*git, "worktree", "add", "-q", "-b", "attempt", str(worktree)], cwd=project, check=True)
    settings = load_settings(cwd=project, environ={}, user_file=tmp_path / "none.toml")
    assert settings.root == project and (worktree / ".claude" / "settings.json").is_file()

    model = ScriptedModel([tool_call("Bash", {"command": "true"}), tool_call("Bash", {"command": "true"}),
                           reply("done")], name="scripted:exec")
    result, _, _ = await run(spec(), "twice", worktree, {"scripted:exec": model}, settings=settings)
    assert result.stop_reason == "end_turn" and result.tool_calls == 2
    assert log.read_text().splitlines() == ["called", "called"]


async def test_the_project_roots_hooks_apply_to_a_workspace_without_its_own(tmp_path: Path) -> None:
    log, workspace = tmp_path / "hook.log", tmp_path / "elsewhere"
    workspace.mkdir()
    _claude_settings(tmp_path, {"PreToolUse": _rule(f"echo called >> {log}")})
    model = ScriptedModel([tool_call("Bash", {"command": "true"}), reply("done")], name="scripted:exec")
    await run(spec(), "once", workspace, {"scripted:exec": model}, settings=settings_for(tmp_path))
    assert log.read_text().splitlines() == ["called"]
