"""Read, Write and Edit on real files in a temporary workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.agents.tools import Edit, Read, ToolContext, Write


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(root=tmp_path)


def _lines(n: int) -> str:
    return "".join(f"line {i}\n" for i in range(1, n + 1))


async def test_read_numbers_lines_cat_n_style(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha\nbeta\n")
    out = await Read().call({"file_path": "a.txt"}, ctx)
    assert not out.is_error
    assert out.content == "     1\talpha\n     2\tbeta"


async def test_read_range_with_offset_and_limit(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(_lines(10))
    out = await Read().call({"file_path": str(tmp_path / "a.txt"), "offset": 4, "limit": 3}, ctx)
    body = out.content.split("\n\n")[0].splitlines()
    assert body == ["     4\tline 4", "     5\tline 5", "     6\tline 6"]
    assert "lines 4-6 of 10" in out.content


async def test_read_offset_past_end_is_an_error(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(_lines(3))
    out = await Read().call({"file_path": "a.txt", "offset": 9}, ctx)
    assert out.is_error and "3 lines" in out.content


async def test_read_truncates_long_lines(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("x" * 5000 + "\nshort\n")
    out = await Read().call({"file_path": "long.txt"}, ctx)
    first, second = out.content.splitlines()
    assert len(first) < 2100 and "truncated" in first
    assert second == "     2\tshort"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: (p / "f").mkdir(), "is a directory"),
        (lambda p: (p / "f").write_bytes(b"\x89PNG\x00\x01\x02"), "binary"),
    ],
)
async def test_read_refuses_missing_directory_and_binary(ctx, tmp_path, setup, expected) -> None:
    setup(tmp_path)
    out = await Read().call({"file_path": "f"}, ctx)
    assert out.is_error and expected in out.content


async def test_write_creates_parent_dirs_and_reports_the_path(ctx: ToolContext, tmp_path: Path) -> None:
    out = await Write().call({"file_path": "src/pkg/new.py", "content": "x = 1\r\n"}, ctx)
    assert not out.is_error
    assert out.files_changed == ["src/pkg/new.py"]
    assert (tmp_path / "src/pkg/new.py").read_bytes() == b"x = 1\r\n"
    again = await Write().call({"file_path": str(tmp_path / "src/pkg/new.py"), "content": "y"}, ctx)
    assert again.content.startswith("Updated") and (tmp_path / "src/pkg/new.py").read_text() == "y"


async def test_edit_replaces_a_unique_match(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def f():\n    return 1\n")
    out = await Edit().call({"file_path": "m.py", "old_string": "return 1", "new_string": "return 2"}, ctx)
    assert not out.is_error and out.files_changed == ["m.py"]
    assert (tmp_path / "m.py").read_text() == "def f():\n    return 2\n"


async def test_edit_with_no_match_changes_nothing(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("a = 1\n")
    out = await Edit().call({"file_path": "m.py", "old_string": "b = 1", "new_string": "b = 2"}, ctx)
    assert out.is_error and "not found" in out.content
    assert (tmp_path / "m.py").read_text() == "a = 1\n"


async def test_edit_with_several_matches_needs_replace_all(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x\nx\nx\n")
    out = await Edit().call({"file_path": "m.py", "old_string": "x", "new_string": "y"}, ctx)
    assert out.is_error and "3 times" in out.content and "replace_all" in out.content
    assert (tmp_path / "m.py").read_text() == "x\nx\nx\n"
    out = await Edit().call({"file_path": "m.py", "old_string": "x", "new_string": "y", "replace_all": True}, ctx)
    assert not out.is_error and "3 occurrences" in out.content
    assert (tmp_path / "m.py").read_text() == "y\ny\ny\n"


async def test_edit_same_old_and_new_is_an_error(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x\n")
    out = await Edit().call({"file_path": "m.py", "old_string": "x", "new_string": "x"}, ctx)
    assert out.is_error and "same" in out.content


async def test_edit_missing_file_points_to_write(ctx: ToolContext) -> None:
    out = await Edit().call({"file_path": "nope.py", "old_string": "a", "new_string": "b"}, ctx)
    assert out.is_error and "Write" in out.content


async def test_edit_keeps_crlf_line_endings(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_bytes(b"one\r\ntwo\r\n")
    out = await Edit().call({"file_path": "w.txt", "old_string": "two", "new_string": "2"}, ctx)
    assert not out.is_error
    assert (tmp_path / "w.txt").read_bytes() == b"one\r\n2\r\n"


async def test_read_stops_early_on_huge_output_and_says_where(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "wide.txt").write_text(("y" * 1500 + "\n") * 1000)
    out = await Read().call({"file_path": "wide.txt"}, ctx)
    assert len(out.content) < 110_000
    assert "read on with offset" in out.content and "of 1000" in out.content
