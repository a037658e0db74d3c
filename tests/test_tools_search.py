"""Glob and Grep over a real directory tree; Grep through both of its backends."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flotilla.agents.tools import Glob, Grep, ToolContext

HAVE_RG = shutil.which("rg") is not None
BACKENDS = ["python", pytest.param("ripgrep", marks=pytest.mark.skipif(not HAVE_RG, reason="rg not installed"))]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    files = {
        "a.py": "import os\nTODO = 1\n",
        "a-b.py": "print('todo later')\n",
        "pkg/__init__.py": "",
        "pkg/core.py": "def run():\n    # TODO: speed up\n    return 1\n",
        "pkg/util.ts": "export const x = 1 // TODO\n",
        "docs/notes.md": "one\ntwo\nTODO three\nfour\nfive\nsix\nseven\nTODO eight\n",
        ".git/config": "TODO in git\n",
        ".hidden/h.py": "TODO hidden\n",
    }
    for i, (name, text) in enumerate(files.items()):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # later in the dict = more recent
    (tmp_path / "blob.bin").write_bytes(b"TODO\x00\x01")
    return tmp_path


async def test_glob_matches_recursively_newest_first_and_skips_git(tree: Path) -> None:
    out = await Glob().call({"pattern": "**/*.py"}, ToolContext(root=tree))
    assert out.content.splitlines() == [".hidden/h.py", "pkg/core.py", "pkg/__init__.py", "a-b.py", "a.py"]


async def test_glob_star_stays_in_one_directory_and_braces_expand(tree: Path) -> None:
    ctx = ToolContext(root=tree)
    assert (await Glob().call({"pattern": "*.py"}, ctx)).content.splitlines() == ["a-b.py", "a.py"]
    out = await Glob().call({"pattern": "pkg/*.{ts,py}"}, ctx)
    assert out.content.splitlines() == ["pkg/util.ts", "pkg/core.py", "pkg/__init__.py"]


async def test_glob_under_a_path_gives_root_relative_paths(tree: Path) -> None:
    out = await Glob().call({"pattern": "*.md", "path": str(tree / "docs")}, ToolContext(root=tree))
    assert out.content == "docs/notes.md"
    none = await Glob().call({"pattern": "*.rs"}, ToolContext(root=tree))
    assert none.content == "No files found" and not none.is_error


async def test_glob_refuses_patterns_that_climb_out(tree: Path) -> None:
    out = await Glob().call({"pattern": "../*"}, ToolContext(root=tree / "pkg"))
    assert out.is_error and ".." in out.content


@pytest.mark.parametrize("backend", BACKENDS)
async def test_grep_files_with_matches_is_the_default(tree: Path, backend: str) -> None:
    out = await Grep(backend=backend).call({"pattern": "TODO"}, ToolContext(root=tree))
    assert out.content.splitlines() == [
        "Found 5 files", ".hidden/h.py", "a.py", "docs/notes.md", "pkg/core.py", "pkg/util.ts",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_grep_content_with_numbers_context_and_case(tree: Path, backend: str) -> None:
    grep, ctx = Grep(backend=backend), ToolContext(root=tree)
    out = await grep.call({"pattern": "todo", "-i": True, "output_mode": "content", "glob": "*.py"}, ctx)
    assert out.content.splitlines() == [
        ".hidden/h.py:1:TODO hidden", "a-b.py:1:print('todo later')", "a.py:2:TODO = 1",
        "pkg/core.py:2:    # TODO: speed up",
    ]
    out = await grep.call({"pattern": "TODO", "output_mode": "content", "path": "docs", "-C": 1}, ctx)
    assert out.content.splitlines() == [
        "docs/notes.md-2-two", "docs/notes.md:3:TODO three", "docs/notes.md-4-four", "--",
        "docs/notes.md-7-seven", "docs/notes.md:8:TODO eight",
    ]
    out = await grep.call({"pattern": "TODO", "output_mode": "content", "path": "pkg/core.py", "-n": False}, ctx)
    assert out.content == "pkg/core.py:    # TODO: speed up"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_grep_count_type_and_head_limit(tree: Path, backend: str) -> None:
    grep, ctx = Grep(backend=backend), ToolContext(root=tree)
    out = await grep.call({"pattern": "TODO", "output_mode": "count", "path": "docs"}, ctx)
    assert out.content.startswith("docs/notes.md:2\n") and "Found 2 matching lines across 1 files" in out.content
    out = await grep.call({"pattern": "TODO", "type": "ts"}, ctx)
    assert out.content.splitlines() == ["Found 1 file", "pkg/util.ts"]
    out = await grep.call({"pattern": "TODO", "head_limit": 2, "offset": 1}, ctx)
    assert out.content.splitlines()[:3] == ["Found 5 files", "a.py", "docs/notes.md"]
    assert "showing 2 of 5" in out.content


@pytest.mark.parametrize("backend", BACKENDS)
async def test_grep_multiline_spans_lines(tree: Path, backend: str) -> None:
    out = await Grep(backend=backend).call(
        {"pattern": r"def run\(\):.*TODO", "multiline": True, "output_mode": "content"}, ToolContext(root=tree)
    )
    assert out.content.splitlines() == ["pkg/core.py:1:def run():", "pkg/core.py:2:    # TODO: speed up"]
    single = await Grep(backend=backend).call({"pattern": r"def run\(\):.*TODO"}, ToolContext(root=tree))
    assert single.content == "No matches found"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_grep_bad_regex_is_a_tool_error(tree: Path, backend: str) -> None:
    out = await Grep(backend=backend).call({"pattern": "(unclosed"}, ToolContext(root=tree))
    assert out.is_error


@pytest.mark.skipif(not HAVE_RG, reason="rg not installed")
@pytest.mark.parametrize(
    "query",
    [
        {"pattern": "o", "output_mode": "content", "-B": 2},
        {"pattern": "TODO|todo", "output_mode": "count"},
        {"pattern": "^\\s+", "output_mode": "content", "-A": 1, "path": "pkg"},
        {"pattern": "x", "glob": "pkg/*"},
    ],
)
async def test_both_backends_print_the_same(tree: Path, query: dict) -> None:
    ctx = ToolContext(root=tree)
    rg = await Grep(backend="ripgrep").call(query, ctx)
    py = await Grep(backend="python").call(query, ctx)
    assert rg.content == py.content and not rg.is_error


async def test_glob_accepts_absolute_patterns_inside_the_workspace(tree: Path) -> None:
    ctx = ToolContext(root=tree)
    out = await Glob().call({"pattern": f"{tree}/pkg/*.py"}, ctx)
    assert out.content.splitlines() == ["pkg/core.py", "pkg/__init__.py"]
    outside = await Glob().call({"pattern": f"{tree.parent}/*"}, ctx)
    assert outside.is_error and "outside" in outside.content
