"""``Glob``: files whose path matches a glob pattern, most recently modified first."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from .base import ToolContext, ToolOutput
from .paths import glob_regex, inside, relative, resolve, walk_files
from .schema import ToolError, guarded

MAX_RESULTS = 100
_MAGIC = re.compile(r"[*?\[{]")


class Glob:
    """Matches ``pattern`` against paths under ``path`` (the workspace root by default)."""

    name = "Glob"
    read_only = True
    description = (
        "Fast file pattern matching.\n\n"
        "- Supports glob patterns like `**/*.py`, `src/**/*.{ts,tsx}` or `*.md`; `*` stays within "
        "one directory, `**/` spans any number of them.\n"
        "- Returns matching file paths relative to the workspace root, most recently modified "
        f"first, at most {MAX_RESULTS}. `.git` is skipped.\n"
        "- `path` is the directory to search in (default: the workspace root)."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "The glob pattern to match files against"},
            "path": {
                "type": "string",
                "description": "The directory to search in. Omit it to search the workspace root.",
            },
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }

    @guarded
    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        base = resolve(input.get("path") or ".", context.root)
        if not base.is_dir():
            raise ToolError(f"{input.get('path')} is not a directory; give a directory to search in.")
        pattern = _relative_pattern(input["pattern"], base)
        matches = await asyncio.to_thread(_glob, base, pattern)
        if not matches:
            return ToolOutput("No files found")
        root = context.root.resolve()
        lines = [relative(p, root) for p in matches[:MAX_RESULTS]]
        if len(matches) > MAX_RESULTS:
            lines.append(
                f"(results are truncated: {len(matches)} files matched, showing the {MAX_RESULTS} "
                "most recently modified; use a more specific path or pattern)"
            )
        return ToolOutput("\n".join(lines))


def _relative_pattern(pattern: str, base: Path) -> str:
    """Makes an absolute pattern relative to ``base``; refuses one that leads out of it."""
    if pattern.startswith("/"):
        parts = pattern.split("/")
        first_magic = next((i for i, part in enumerate(parts) if _MAGIC.search(part)), len(parts) - 1)
        # resolve the literal directory part, so /var and /private/var (say) compare equal
        literal = Path("/".join(parts[:first_magic]) or "/").resolve()
        if not inside(literal, base):
            raise ToolError(f"pattern {pattern} is outside the search directory {base}; use a relative pattern.")
        prefix = literal.relative_to(base).as_posix()
        rest = "/".join(parts[first_magic:])
        pattern = rest if prefix == "." else f"{prefix}/{rest}"
    if ".." in pattern.split("/"):
        raise ToolError(f"pattern {pattern} uses '..'; patterns must stay inside the workspace.")
    return pattern.removeprefix("./")


def _glob(base: Path, pattern: str) -> list[Path]:
    # walk only below the pattern's literal directory prefix ("src/**/*.py" walks src/)
    parts = pattern.split("/")
    literal = []
    for part in parts[:-1]:
        if _MAGIC.search(part):
            break
        literal.append(part)
    start = base.joinpath(*literal) if literal else base
    if not inside(start.resolve(), base):  # a literal prefix through a symlink that leads out
        return []
    regex = glob_regex(pattern)
    found: list[tuple[float, str, Path]] = []
    for path in walk_files(start):
        rel = path.relative_to(base).as_posix()
        if regex.match(rel):
            try:
                mtime = path.lstat().st_mtime
            except OSError:
                continue
            found.append((-mtime, rel, path))
    found.sort(key=lambda item: (item[0], item[1]))
    return [path for _, _, path in found]
