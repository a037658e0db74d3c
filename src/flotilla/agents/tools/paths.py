"""The workspace fence, and the file walking and glob matching Glob and Grep share.

Every path a tool touches is resolved against the workspace root, symlinks
followed, and must land inside it: ``..``, absolute paths elsewhere and symlinks
that lead out are refused with a ``ToolError`` the model reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from .schema import ToolError

__all__ = ["inside", "relative", "resolve", "glob_regex", "walk_files", "SKIP_DIRS"]

SKIP_DIRS = frozenset({".git"})


def resolve(raw: str, root: Path) -> Path:
    """Resolves ``raw`` (absolute, or relative to ``root``) to a real path inside ``root``.

    Raises ``ToolError`` when it leads out, by ``..``, an absolute path or a symlink.
    The path need not exist (Write creates files).
    """
    if not raw or not raw.strip():
        raise ToolError("the path is empty; give a file path inside the workspace")
    if "\x00" in raw:
        raise ToolError("the path contains a NUL character")
    real_root = root.resolve()
    path = Path(raw)
    if not path.is_absolute():
        path = real_root / path
    # resolve() follows every symlink on the way, existing or not, so a link out is caught here
    real = path.resolve()
    if not inside(real, real_root):
        raise ToolError(
            f"{raw} is outside the workspace ({real_root}); only paths inside it may be used"
            + (" (it leads out through a symlink)" if _escapes_by_symlink(path, real_root) else "")
        )
    return real


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or root in path.parents


def _escapes_by_symlink(path: Path, real_root: Path) -> bool:
    return inside(Path(os.path.normpath(path)), real_root)


def relative(path: Path, root: Path) -> str:
    """``path`` relative to the workspace root, with forward slashes, for the model and for files_changed."""
    rel = path.relative_to(root.resolve()).as_posix()
    return rel or "."


def walk_files(base: Path) -> Iterator[Path]:
    """Yields the files under ``base``, depth first, each directory's entries sorted by name.

    This is ripgrep's ``--sort path`` order, so both Grep backends list files alike.
    ``.git`` is skipped, and so are symlinks (files and directories), as ripgrep does
    without ``--follow``: a link cannot carry a search out of the workspace.
    """
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS:
                    yield from walk_files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield Path(entry.path)
        except OSError:
            continue


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compiles a glob (``*``, ``?``, ``[...]``, ``**``, ``{a,b}``) into a regex over ``/``-separated paths."""
    return re.compile(_translate(pattern) + r"\Z", re.DOTALL)


def _translate(pat: str) -> str:
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := pat.find("]", i + 2)) != -1:
            body = pat[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "{" and (end := _closing_brace(pat, i)) != -1:
            options = _split_top(pat[i + 1 : end])
            out.append("(?:" + "|".join(_translate(o) for o in options) + ")")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _closing_brace(pat: str, start: int) -> int:
    depth = 0
    for j in range(start, len(pat)):
        if pat[j] == "{":
            depth += 1
        elif pat[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _split_top(body: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    parts.append(current)
    return parts
