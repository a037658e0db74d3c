"""``Read``: a text file as numbered lines (``cat -n`` style), a range at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .base import ToolContext, ToolOutput
from .paths import resolve
from .schema import ToolError, guarded

DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000
MAX_OUTPUT_CHARS = 100_000
"""Past this many characters a read stops early and says where, so one call cannot flood the context."""
_SNIFF_BYTES = 8192


class Read:
    """Reads a file inside the workspace; ``offset`` is the first line (1-based), ``limit`` how many."""

    name = "Read"
    read_only = True
    description = (
        "Reads a file from the workspace.\n\n"
        "- `file_path` is an absolute path inside the workspace, or a path relative to its root.\n"
        f"- Reads up to {DEFAULT_LIMIT} lines by default; `offset` (1-based line to start at) and "
        "`limit` (number of lines) read a part of a long file.\n"
        f"- Lines longer than {MAX_LINE_CHARS} characters are truncated.\n"
        "- Results use cat -n format: line number, a tab, then the line. Strip that prefix "
        "before using text in Edit.\n"
        "- Directories and binary files cannot be read: use Glob to list files."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The path of the file to read"},
            "offset": {
                "type": "integer",
                "minimum": 0,
                "description": "The line number to start reading from. Only provide if the file is too large to read at once",
            },
            "limit": {
                "type": "integer",
                "exclusiveMinimum": 0,
                "description": "The number of lines to read. Only provide if the file is too large to read at once.",
            },
        },
        "required": ["file_path"],
        "additionalProperties": False,
    }

    @guarded
    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        raw = input["file_path"]
        path = resolve(raw, context.root)
        if not path.exists():
            raise ToolError(f"File does not exist: {raw}. Use Glob to find the right path.")
        if path.is_dir():
            raise ToolError(f"{raw} is a directory, not a file. Use Glob (e.g. pattern '*') to list it.")
        start = max(int(input.get("offset") or 1), 1)
        limit = int(input.get("limit") or DEFAULT_LIMIT)
        with path.open("rb") as fh:
            if b"\x00" in fh.read(_SNIFF_BYTES):
                raise ToolError(f"{raw} is a binary file and cannot be read as text.")
        # in a thread: a long file is read to its end to count its lines
        return ToolOutput(await asyncio.to_thread(_numbered, path, raw, start, limit))


def _numbered(path: Path, raw: str, start: int, limit: int) -> str:
    shown: list[str] = []
    total = size = 0
    stopped_at: int | None = None
    # newline="" leaves each line's own ending ("\n" or "\r\n") on it, to strip here
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        for total, line in enumerate(fh, start=1):
            if start <= total < start + limit and stopped_at is None:
                text = line.rstrip("\r\n")
                if len(text) > MAX_LINE_CHARS:
                    text = text[:MAX_LINE_CHARS] + f"… [line truncated, {len(text)} characters]"
                size += len(text) + 8
                if size > MAX_OUTPUT_CHARS and shown:
                    stopped_at = total
                    continue
                shown.append(f"{total:>6}\t{text}")
    if total == 0:
        return f"(the file {raw} is empty)"
    if start > total:
        raise ToolError(f"offset {start} is past the end of {raw}, which has {total} lines.")
    end = start + len(shown) - 1
    if stopped_at is not None:
        shown.append(f"\n(output stopped at {MAX_OUTPUT_CHARS} characters: showing lines {start}-{end} "
                     f"of {total}; read on with offset {stopped_at})")
    elif start > 1 or end < total:
        shown.append(f"\n(showing lines {start}-{end} of {total}; use offset and limit to read more)")
    return "\n".join(shown)
