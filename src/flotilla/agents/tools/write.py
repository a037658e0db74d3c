"""``Write``: creates or replaces a whole file, making parent directories."""

from __future__ import annotations

from typing import Any

from .base import ToolContext, ToolOutput
from .paths import relative, resolve
from .schema import ToolError, guarded


class Write:
    """Writes ``content`` to ``file_path`` inside the workspace, replacing what was there."""

    name = "Write"
    read_only = False
    description = (
        "Writes a file in the workspace, overwriting it if it exists.\n\n"
        "- `file_path` is an absolute path inside the workspace, or a path relative to its root; "
        "missing parent directories are created.\n"
        "- Prefer Edit for changing part of an existing file; use Write to create a file or "
        "replace one you have read in full."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The path of the file to write"},
            "content": {"type": "string", "description": "The content to write to the file"},
        },
        "required": ["file_path", "content"],
        "additionalProperties": False,
    }

    @guarded
    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        raw, content = input["file_path"], input["content"]
        path = resolve(raw, context.root)
        if path.is_dir():
            raise ToolError(f"{raw} is a directory; give the path of a file to write.")
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        # newline="" writes the content byte for byte, without translating line endings
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write(content)
        rel = relative(path, context.root)
        lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
        verb = "Updated" if existed else "Created"
        return ToolOutput(f"{verb} {rel} ({lines} lines)", files_changed=[rel])
