"""Agent files: frontmatter as Claude Code reads it, precedence, broken files, built-ins, model resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.agents import builtin_agents, get_agent, load_agents, parse_agent
from flotilla.agents.wiring import resolve_model_name
from flotilla.errors import AgentFileError, UnknownModel
from flotilla.models.catalog import Catalog

from test_runtime_support import settings_for

REVIEWER = """---
name: code-reviewer
description: Expert code review specialist. Use immediately after writing or modifying code.
tools: Read, Grep, Glob, Bash
model: sonnet
color: purple
---

You are a senior code reviewer.
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(text)
    return path


def test_a_claude_code_agent_file_reads_unchanged() -> None:
    spec = parse_agent(REVIEWER, source="x.md")
    assert (spec.name, spec.model, spec.tools, spec.system_prompt) == (
        "code-reviewer", "sonnet", ["Read", "Grep", "Glob", "Bash"], "You are a senior code reviewer.")
    assert spec.extra == {"color": "purple"} and spec.warnings == []
    assert not spec.read_only


def test_every_field_including_flotillas_own() -> None:
    spec = parse_agent("""---
name: fixer
description: "Fixes: bugs"
tools: [Read, Edit, Task]
disallowedTools: Edit
model: openai:gpt-5
permissionMode: plan
maxTurns: 12
fallbackModel: sonnet, haiku
advisor: opus
budgetUsd: 1.5
mood: cheerful
---
Fix it.""", source="f.md")
    assert spec.tools == ["Read", "Edit", "Agent"]  # Task is Claude Code's old name for Agent
    assert spec.allowed_tools() == ["Read", "Agent"]
    assert (spec.permission_mode, spec.max_turns, spec.fallback_model, spec.advisor, spec.budget_usd) == (
        "plan", 12, ["sonnet", "haiku"], "opus", 1.5)
    assert spec.read_only and spec.extra == {"mood": "cheerful"}
    assert spec.warnings == ["f.md: unknown field 'mood' kept but not used"]


def test_descriptions_with_colons_read_as_claude_code_reads_them() -> None:
    spec = parse_agent("---\nname: a\ndescription: Use when: the build fails: always\nmodel: haiku\n---\nbody",
                       source="a.md")
    assert (spec.description, spec.model) == ("Use when: the build fails: always", "haiku")


@pytest.mark.parametrize("front, field", [
    ("name: a\nmaxTurns: many", "maxTurns"),
    ("name: a\ntools: {Read: yes}", "tools"),
    ("name: a\npermissionMode: yolo", "permissionMode"),
    ("name: a\nbudgetUsd: -1", "budgetUsd"),
    ("name: 'two words'", "name"),
    ("name: a\nfallbackModel: a, b, c, d", "fallbackModel"),
])
def test_a_bad_field_is_named(front: str, field: str) -> None:
    with pytest.raises(AgentFileError) as caught:
        parse_agent(f"---\n{front}\n---\nbody", source="bad.md")
    assert (caught.value.path, caught.value.field) == ("bad.md", field)


def test_a_broken_file_is_reported_while_the_others_load(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    _write(project / ".claude" / "agents", "good", "---\nname: good\ndescription: fine\n---\nHi")
    broken = _write(project / ".claude" / "agents", "broken", "---\nname: broken\nmaxTurns: -3\n---\nHi")
    _write(project / ".claude" / "agents", "nofront", "just text, no frontmatter")
    agents, errors = load_agents(project, home=home)
    assert "good" in agents and "broken" not in agents and "general-purpose" in agents
    assert sorted((Path(e.path).name, e.field) for e in errors) == [
        ("broken.md", "maxTurns"), ("nofront.md", "(frontmatter)")]
    # Asking for the broken one by name gives its error, not "unknown agent".
    with pytest.raises(AgentFileError) as caught:
        get_agent("broken", project, home=home)
    assert caught.value.path == str(broken)
    with pytest.raises(UnknownModel):
        get_agent("nobody", project, home=home)


def test_project_beats_user_beats_built_in(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    _write(home / ".claude" / "agents", "explorer", "---\nname: explorer\nmodel: opus\n---\nuser's")
    _write(home / ".claude" / "agents", "mine", "---\nname: mine\n---\nuser's")
    _write(project / ".claude" / "agents", "mine", "---\nname: mine\n---\nproject's")
    _write(home / ".config" / "flotilla" / "agents", "tool", "---\nname: tool\n---\nflotilla user's")
    agents, errors = load_agents(project, home=home)
    assert errors == []
    assert agents["mine"].system_prompt == "project's"
    assert agents["explorer"].system_prompt == "user's" and agents["explorer"].model == "opus"
    assert agents["tool"].system_prompt == "flotilla user's"
    assert agents["reviewer"].source == "built-in"


def test_the_built_in_agents() -> None:
    agents = builtin_agents()
    assert sorted(agents) == ["architect", "explorer", "general-purpose", "implementer", "reviewer",
                              "security-reviewer", "test-writer"]
    assert {n for n, s in agents.items() if s.read_only} == {"architect", "explorer", "reviewer",
                                                                "security-reviewer"}
    assert (agents["explorer"].model, agents["architect"].model, agents["implementer"].model) == (
        "haiku", "opus", "sonnet")
    assert all(len(s.system_prompt) > 300 and s.description and not s.warnings for s in agents.values())


def test_inherit_resolution_order(tmp_path: Path) -> None:
    catalog = Catalog.load()
    spec = parse_agent("---\nname: a\nmodel: inherit\n---\n", source="a.md")
    settings = settings_for(tmp_path, model="haiku")
    assert resolve_model_name(spec, settings, catalog, environ={}) == catalog.resolve("haiku")
    assert resolve_model_name(spec, settings, catalog, environ={}, parent_model="openai:gpt-5") == "openai:gpt-5"
    env = {"CLAUDE_CODE_SUBAGENT_MODEL": "sonnet"}
    assert resolve_model_name(spec, settings, catalog, environ=env, parent_model="openai:gpt-5") == \
        catalog.resolve("sonnet")
    env["FLOTILLA_SUBAGENT_MODEL"] = "opus"
    assert resolve_model_name(spec, settings, catalog, environ=env) == catalog.resolve("opus")
    assert resolve_model_name(spec, settings, catalog, environ=env, override="scripted:x") == "scripted:x"
