"""Permission rules from Claude Code's settings files, enforced by the runtime: deny, ask (unattended), the user's file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from flotilla.agents import Limits
from flotilla.agents.environment import Environment
from flotilla.agents.permissions import load_permissions
from flotilla.errors import ConfigError
from flotilla.events import ToolCalled, ToolDenied
from flotilla.testing import ScriptedModel, reply, tool_call, tool_calls

from test_runtime_support import results_in, run, spec, tool_names


def _settings(folder: Path, data: dict[str, Any], name: str = "settings.json") -> Path:
    (folder / ".claude").mkdir(parents=True, exist_ok=True)
    path = folder / ".claude" / name
    path.write_text(json.dumps(data))
    return path


def _project(root: Path) -> Path:
    (root / ".git").mkdir(parents=True)
    return root


async def test_a_bash_deny_rule_refuses_rm_alone_and_inside_a_compound_command(tmp_path: Path) -> None:
    root = _project(tmp_path)
    source = _settings(root, {"permissions": {"deny": ["Bash(rm:*)"]}})
    (root / "x").mkdir()
    (root / "x" / "keep.txt").write_text("precious")
    model = ScriptedModel([tool_calls(("Bash", {"command": "rm -rf x"}), ("Bash", {"command": "cd . && rm -rf x"}),
                                      ("Bash", {"command": "ls x"})), reply("ok")], name="scripted:exec")
    result, _, sink = await run(spec(), "clean", root, {"scripted:exec": model})

    assert (root / "x" / "keep.txt").read_text() == "precious"
    first, second, listed = results_in(model.calls[1])
    for denied in (first, second):
        assert denied.is_error and f"refused by the permission rule 'Bash(rm:*)' (deny, in {source})" in denied.text()
    assert not listed.is_error and "keep.txt" in listed.text()
    assert [d.tool for d in sink.of(ToolDenied)] == ["Bash", "Bash"] and len(sink.of(ToolCalled)) == 1
    assert len(result.denials) == 2


async def test_a_read_deny_rule_refuses_the_env_file_and_nothing_else(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _settings(root, {"permissions": {"deny": ["Read(./.env)"]}}, "settings.local.json")
    (root / ".env").write_text("SECRET=hunter2\n")
    (root / "app.py").write_text("print('hi')\n")
    model = ScriptedModel([tool_calls(("Read", {"file_path": ".env"}), ("Read", {"file_path": str(root / ".env")}),
                                      ("Read", {"file_path": "app.py"})), reply("ok")], name="scripted:exec")
    _, _, sink = await run(spec(), "read", root, {"scripted:exec": model})

    relative, absolute, app = results_in(model.calls[1])
    assert relative.is_error and absolute.is_error and "Read(./.env)" in relative.text()
    assert "hunter2" not in str(model.calls[1].messages)
    assert not app.is_error and "print('hi')" in app.text()
    assert [d.tool for d in sink.of(ToolDenied)] == ["Read", "Read"]


async def test_grep_and_glob_results_leave_out_the_files_a_read_rule_withholds(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _settings(root, {"permissions": {"deny": ["Read(./.env)", "Read(secrets/**)"]}})
    (root / ".env").write_text("TOKEN=hunter2\n")
    (root / "secrets").mkdir()
    (root / "secrets" / "prod-key.txt").write_text("TOKEN=hunter3\n")
    (root / "app.py").write_text("TOKEN = 'placeholder'\n")
    model = ScriptedModel([tool_calls(("Grep", {"pattern": "TOKEN", "output_mode": "content"}),
                                      ("Grep", {"pattern": "TOKEN"}), ("Glob", {"pattern": "**/*.txt"})),
                           reply("ok")], name="scripted:exec")
    await run(spec(), "search", root, {"scripted:exec": model})

    content, files, globbed = (r.text() for r in results_in(model.calls[1]))
    assert "app.py:1:TOKEN = 'placeholder'" in content
    assert "hunter" not in content and "left out" in content
    assert "app.py" in files and ".env" not in files and "prod-key" not in files
    assert "prod-key" not in globbed


async def test_an_edit_rule_covers_write_and_a_bare_deny_hides_the_tool(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _settings(root, {"permissions": {"deny": ["Edit(/src/**)", "Bash"]}})
    model = ScriptedModel([tool_calls(("Write", {"file_path": "src/a.py", "content": "x"}),
                                      ("Write", {"file_path": "b.py", "content": "y"}),
                                      ("Bash", {"command": "echo hi"})), reply("ok")], name="scripted:exec")
    await run(spec(), "write", root, {"scripted:exec": model})

    denied, written, bash = results_in(model.calls[1])
    assert denied.is_error and not (root / "src" / "a.py").exists()
    assert not written.is_error and (root / "b.py").read_text() == "y"
    assert bash.is_error and "'Bash' (deny" in bash.text()
    assert "Bash" not in tool_names(model.calls[0]) and "Write" in tool_names(model.calls[0])


@pytest.mark.parametrize("approve", [False, True])
async def test_ask_in_an_unattended_run_is_a_denial_unless_approved(tmp_path: Path, approve: bool) -> None:
    root = _project(tmp_path)
    _settings(root, {"permissions": {"ask": ["Bash(git push:*)", "Bash(touch:*)"], "allow": ["Bash(touch:*)"]}})
    model = ScriptedModel([tool_call("Bash", {"command": "touch made.txt"}), reply("ok")], name="scripted:exec")
    result, _, _ = await run(spec(), "touch", root, {"scripted:exec": model}, limits=Limits(approve_asks=approve))

    answer = results_in(model.calls[1])[0]
    if approve:
        assert not answer.is_error and (root / "made.txt").exists()
    else:  # ask comes before allow: the allow rule does not let it through
        assert answer.is_error and "unattended" in answer.text() and "--yes" in answer.text()
        assert not (root / "made.txt").exists() and len(result.denials) == 1


async def test_the_users_settings_rules_and_hooks_apply_too(tmp_path: Path, claude_home: Path) -> None:
    root = _project(tmp_path / "repo")
    hook = tmp_path / "hook.py"
    hook.write_text("import json, sys\nevent = json.load(sys.stdin)\n"
                    "open(sys.argv[1], 'a').write(event['tool_name'] + '\\n')\n")
    seen = tmp_path / "seen.txt"
    (claude_home / "settings.json").write_text(json.dumps({
        "permissions": {"deny": ["Read(*.key)"]},
        "hooks": {"PreToolUse": [{"matcher": "Read", "hooks": [
            {"type": "command", "command": f"{sys.executable} {hook} {seen}"}]}]}}))
    (root / "deep").mkdir()
    (root / "deep" / "id.key").write_text("PRIVATE")
    model = ScriptedModel([tool_call("Read", {"file_path": "deep/id.key"}), reply("ok")], name="scripted:exec")
    await run(spec(), "read", root, {"scripted:exec": model})

    denied = results_in(model.calls[1])[0]
    assert denied.is_error and "Read(*.key)" in denied.text() and str(claude_home / "settings.json") in denied.text()
    assert seen.read_text() == "Read\n"


def test_mcp_rules_name_a_tool_or_a_whole_server(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _settings(root, {"permissions": {"deny": ["mcp__git__git_push"], "ask": ["mcp__fs"]}})
    rules = load_permissions(root)
    assert rules.decide("mcp__git__git_push", {}, root)[0] == "deny"
    assert rules.decide("mcp__git__git_status", {}, root)[0] == "default"
    assert rules.decide("mcp__fs__write_file", {}, root)[0] == "ask"
    assert rules.decide("mcp__fsx__read", {}, root)[0] == "default"


@pytest.mark.parametrize("data, key", [({"permissions": {"deny": "Bash"}}, "permissions.deny"),
                                       ({"permissions": {"deny": ["Bash(rm:*)", 3]}}, "permissions.deny[1]"),
                                       ({"permissions": {"ask": ["not a rule!"]}}, "permissions.ask[0]")])
def test_a_broken_rule_names_its_file_and_key(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    root = _project(tmp_path)
    path = _settings(root, data)
    with pytest.raises(ConfigError) as caught:
        Environment.load(root)
    assert (caught.value.file, caught.value.key) == (str(path), key)


DRIVER = '''
import sys
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.testing.registry import register_scripted

register_scripted("toucher", lambda: ScriptedModel([tool_call("Bash", {"command": "touch made.txt"}), reply("done")]))
from flotilla.cli.main import main
sys.argv = ["flotilla", *sys.argv[1:]]
main()
'''


@pytest.mark.parametrize("yes", [False, True])
def test_flotilla_run_yes_approves_ask_rules_in_a_durable_run(tmp_path: Path, yes: bool) -> None:
    import os
    import subprocess

    root = _project(tmp_path / "repo")
    _settings(root, {"permissions": {"ask": ["Bash(touch:*)"]}})
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db"), "HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(driver), "run", "general-purpose", "touch it", "--model",
                           "scripted:toucher", "--json", *(["--yes"] if yes else [])],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (root / "made.txt").exists() == yes
    assert len(json.loads(done.stdout)["denials"]) == (0 if yes else 1)


def test_agent_and_skill_rules_name_what_they_start(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _settings(root, {"permissions": {"deny": ["Agent(security-reviewer)", "Skill(deploy)"],
                                     "ask": ["Bash(npm run *)"]}})
    rules = load_permissions(root)
    assert rules.decide("Agent", {"subagent_type": "security-reviewer"}, root)[0] == "deny"
    assert rules.decide("Agent", {"prompt": "x"}, root)[0] == "default"  # general-purpose
    assert rules.decide("Skill", {"skill": "deploy"}, root)[0] == "deny"
    assert rules.decide("Bash", {"command": "npm run test -- -x"}, root)[0] == "ask"
    assert rules.decide("Bash", {"command": "npm install"}, root)[0] == "default"
    assert not rules.hidden("Agent") and not rules.hidden("Bash")


async def test_a_deny_rule_the_runtime_adds_holds_for_the_run_and_its_subagents(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "features.json").write_text("[]\n")
    child = ScriptedModel([tool_call("Edit", {"file_path": "features.json", "old_string": "[]", "new_string": "[1]"}),
                           tool_call("Write", {"file_path": "notes.txt", "content": "ok"}), reply("tried")],
                          name="scripted:child")
    lead = ScriptedModel([tool_call("Write", {"file_path": "./sub/../features.json", "content": "{}"}),
                          tool_call("Agent", {"description": "x", "prompt": "edit it", "subagent_type": "child"}),
                          reply("done")], name="scripted:exec")
    agents = {"child": spec("child", model="scripted:child")}
    result, _, sink = await run(spec("lead"), "x", root, {"scripted:exec": lead, "scripted:child": child},
                                agents=agents, limits=Limits(deny=("Edit(./features.json)",)))
    assert (root / "features.json").read_text() == "[]\n" and (root / "notes.txt").read_text() == "ok"
    denied = [d.reason for d in sink.of(ToolDenied)]
    assert len(denied) == 2 and all("'Edit(./features.json)' (deny, in the runtime (flotilla))" in d for d in denied)
