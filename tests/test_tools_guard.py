"""The fence around every tool: paths stay in the workspace, input is checked, read-only holds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flotilla.agents.tools import (
    Bash, Edit, Glob, Grep, Read, ToolContext, Write, default_tools, validate,
)
from flotilla.protocols import Tool


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("SECRET\n")
    (root / "ok.txt").write_text("fine\n")
    return root


def test_default_tools_are_tools_with_claude_code_names() -> None:
    tools = default_tools()
    assert list(tools) == ["Read", "Write", "Edit", "Glob", "Grep", "Bash"]
    assert all(isinstance(t, Tool) for t in tools.values())
    assert {n for n, t in tools.items() if t.read_only} == {"Read", "Glob", "Grep"}
    assert tools["Grep"].input_schema["properties"]["output_mode"]["enum"] == [
        "content", "files_with_matches", "count",
    ]


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "{tmp}/secret.txt", "/etc/passwd"])
async def test_paths_outside_the_workspace_are_refused(work: Path, path: str) -> None:
    path = path.format(tmp=work.parent)
    ctx = ToolContext(root=work)
    read = await Read().call({"file_path": path}, ctx)
    assert read.is_error and "outside the workspace" in read.content
    write = await Write().call({"file_path": path, "content": "pwned"}, ctx)
    assert write.is_error
    assert (work.parent / "secret.txt").read_text() == "SECRET\n"


async def test_symlinks_that_lead_out_are_refused(work: Path) -> None:
    os.symlink(work.parent / "secret.txt", work / "link.txt")
    os.symlink(work.parent, work / "up")
    ctx = ToolContext(root=work)
    for tool, args in [
        (Read(), {"file_path": "link.txt"}),
        (Edit(), {"file_path": "link.txt", "old_string": "SECRET", "new_string": "x"}),
        (Write(), {"file_path": "up/secret.txt", "content": "x"}),
        (Write(), {"file_path": "up/new.txt", "content": "x"}),
        (Glob(), {"pattern": "*", "path": "up"}),
        (Grep(backend="python"), {"pattern": "SECRET", "path": "up"}),
    ]:
        out = await tool.call(args, ctx)
        assert out.is_error and "symlink" in out.content, (tool.name, out.content)
    assert (work.parent / "secret.txt").read_text() == "SECRET\n"
    assert not (work.parent / "new.txt").exists()
    # walking the tree does not follow the links either
    for tool, args in [(Glob(), {"pattern": "**/*.txt"}), (Glob(), {"pattern": "up/*"}),
                       (Grep(backend="python"), {"pattern": "SECRET"})]:
        out = await tool.call(args, ctx)
        assert "secret" not in out.content.lower(), (tool.name, out.content)


async def test_symlinks_inside_the_workspace_are_fine(work: Path) -> None:
    os.symlink(work / "ok.txt", work / "alias.txt")
    out = await Read().call({"file_path": str(work / "alias.txt")}, ToolContext(root=work))
    assert not out.is_error and "fine" in out.content


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        (Read(), {}, "file_path"),
        (Read(), {"file_path": "ok.txt", "offset": "10"}, "offset"),
        (Read(), {"file_path": "ok.txt", "limit": 0}, "limit"),
        (Edit(), {"file_path": "ok.txt", "old_string": "a", "new_string": "b", "replace_all": "yes"}, "replace_all"),
        (Grep(), {"pattern": "x", "output_mode": "lines"}, "output_mode"),
        (Grep(), {"pattern": "x", "-A": True}, "-A"),
        (Bash(), {"command": "true", "cwd": "/"}, "cwd"),
        (Write(), {"file_path": 3, "content": "x"}, "file_path"),
    ],
)
async def test_schema_failures_come_back_as_tool_errors_naming_the_field(work, tool, args, field) -> None:
    out = await tool.call(args, ToolContext(root=work))
    assert out.is_error
    assert out.content.startswith(f"Invalid input for {tool.name}") and repr(field) in out.content


def test_validator_subset() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["n"],
        "additionalProperties": False,
    }
    assert validate({"n": 2, "tags": ["a"]}, schema) == []
    assert validate({"n": 2.0}, schema) == []
    assert validate({"n": True}, schema) == ["field 'n': expected integer, got boolean (True)"]
    assert validate({"n": 0, "tags": ["a", 1]}, schema) == [
        "field 'n': must be at least 1, got 0", "field 'tags[1]': expected string, got integer (1)",
    ]
    assert validate([], schema) == ["input: expected object, got array ([])"]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        (Write(), {"file_path": "ok.txt", "content": "changed"}),
        (Write(), {"file_path": "new.txt", "content": "new"}),
        (Edit(), {"file_path": "ok.txt", "old_string": "fine", "new_string": "changed"}),
        (Bash(), {"command": "echo changed > ok.txt; touch new.txt"}),
    ],
)
async def test_read_only_context_refuses_writers_and_changes_nothing(work: Path, tool, args) -> None:
    out = await tool.call(args, ToolContext(root=work, read_only=True))
    assert out.is_error and "read-only" in out.content
    assert (work / "ok.txt").read_text() == "fine\n"
    assert sorted(p.name for p in work.iterdir()) == ["ok.txt"]


async def test_read_only_context_still_reads(work: Path) -> None:
    ctx = ToolContext(root=work, read_only=True)
    assert not (await Read().call({"file_path": "ok.txt"}, ctx)).is_error
    assert (await Glob().call({"pattern": "*.txt"}, ctx)).content == "ok.txt"
    assert "ok.txt" in (await Grep().call({"pattern": "fine"}, ctx)).content


async def test_unexpected_failures_become_tool_errors(work: Path) -> None:
    (work / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    out = await Edit().call({"file_path": "latin1.txt", "old_string": "caf", "new_string": "tea"}, ToolContext(root=work))
    assert out.is_error and "UnicodeDecodeError" in out.content
    assert (work / "latin1.txt").read_bytes() == b"caf\xe9\n"
