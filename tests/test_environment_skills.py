"""Skills: descriptions in the system prompt, the body only once the Skill tool is called, files beside it, `skills:`."""

from __future__ import annotations

from pathlib import Path

from flotilla.agents import parse_agent
from flotilla.agents.skills import load_skills
from flotilla.testing import ScriptedModel, reply, tool_call, tool_calls

from test_runtime_support import results_in, run, spec, tool_names


def _skill(base: Path, folder: str, front: str, body: str) -> Path:
    path = base / folder / "SKILL.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front}\n---\n{body}\n")
    return path.parent


def _project(root: Path) -> Path:
    (root / ".git").mkdir(parents=True)
    return root


async def test_the_description_is_listed_and_the_body_arrives_only_through_the_skill_tool(tmp_path: Path) -> None:
    root = _project(tmp_path)
    folder = _skill(root / ".claude" / "skills", "release", "name: release\ndescription: Cut a release: tag, "
                    "changelog, publish. Use when asked to release.", "SECRET-STEPS: bump the version first.")
    (folder / "checklist.md").write_text("CHECKLIST-ITEM: sign the tag\n")
    model = ScriptedModel([tool_call("Skill", {"skill": "release"}),
                           tool_calls(("Skill", {"skill": "release", "file": "checklist.md"}),
                                      ("Skill", {"skill": "release", "file": "../../../.git/config"}),
                                      ("Skill", {"skill": "nope"})),
                           reply("released")], name="scripted:exec")
    result, _, _ = await run(spec(), "release 1.2", root, {"scripted:exec": model})

    first = model.calls[0]
    assert "- release: Cut a release: tag, changelog, publish. Use when asked to release." in first.system
    assert "SECRET-STEPS" not in first.system and "SECRET-STEPS" not in str(first.messages)
    assert "Skill" in tool_names(first)
    body = results_in(model.calls[1])[0]
    assert not body.is_error and "SECRET-STEPS: bump the version first." in body.text()
    assert str(folder.resolve()) in body.text() and "- checklist.md" in body.text()
    beside, escape, unknown = results_in(model.calls[2])
    assert not beside.is_error and "CHECKLIST-ITEM" in beside.text()
    assert escape.is_error and "outside" in escape.text()
    assert unknown.is_error and "No skill named 'nope'. Skills: release." in unknown.text()
    assert result.stop_reason == "end_turn"


async def test_a_users_skill_wins_by_name_and_its_files_are_readable_outside_the_workspace(
        tmp_path: Path, claude_home: Path) -> None:
    root = _project(tmp_path / "repo")
    _skill(root / ".claude" / "skills", "style", "name: style\ndescription: project style", "PROJECT-BODY")
    user = _skill(claude_home / "skills", "style", "description: my own style", "USER-BODY")
    (user / "ref.md").write_text("USER-REFERENCE\n")
    model = ScriptedModel([tool_calls(("Skill", {"skill": "style"}), ("Skill", {"skill": "style", "file": "ref.md"})),
                           reply("ok")], name="scripted:exec")
    await run(spec(), "style", root, {"scripted:exec": model})

    assert "- style: my own style" in model.calls[0].system and "project style" not in model.calls[0].system
    body, ref = results_in(model.calls[1])
    assert "USER-BODY" in body.text() and "USER-REFERENCE" in ref.text()


async def test_an_agents_skills_field_limits_what_it_sees(tmp_path: Path) -> None:
    root = _project(tmp_path)
    for name in ("alpha", "beta"):
        _skill(root / ".claude" / "skills", name, f"description: the {name} skill", f"{name.upper()}-BODY")
    agent = parse_agent("---\nname: narrow\nskills: alpha\n---\nYou are narrow.\n", source="narrow.md")
    model = ScriptedModel([tool_call("Skill", {"skill": "beta"}), reply("ok")], name="scripted:exec")
    await run(agent, "x", root, {"scripted:exec": model})

    assert "the alpha skill" in model.calls[0].system and "the beta skill" not in model.calls[0].system
    refused = results_in(model.calls[1])[0]
    assert refused.is_error and "BETA-BODY" not in refused.text() and "Skills: alpha." in refused.text()


async def test_no_skills_means_no_skill_tool_and_no_section(tmp_path: Path) -> None:
    root = _project(tmp_path)
    model = ScriptedModel([reply("ok")], name="scripted:exec")
    await run(spec(), "x", root, {"scripted:exec": model})
    assert "Skill" not in tool_names(model.calls[0]) and "# Skills" not in model.calls[0].system


def test_a_skill_without_a_description_is_reported_and_a_person_only_skill_left_out(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _skill(root / ".claude" / "skills", "vague", "name: vague", "body")
    _skill(root / ".claude" / "skills", "good", "description: fine", "body")
    _skill(root / ".claude" / "skills", "manual", "description: by hand only\ndisable-model-invocation: true", "b")
    skills, errors = load_skills(root)
    assert list(skills) == ["good"]
    assert [(e.field, Path(e.path).parent.name) for e in errors] == [("description", "vague")]
