"""``Edit``: exact string replacement in one file."""

from __future__ import annotations

from typing import Any

from .base import ToolContext, ToolOutput
from .paths import relative, resolve
from .schema import ToolError, guarded


class Edit:
    """Replaces ``old_string`` with ``new_string``; it must match exactly once unless ``replace_all``."""

    name = "Edit"
    read_only = False
    description = (
        "Performs an exact string replacement in a file.\n\n"
        "- `old_string` must match the file exactly, including whitespace and indentation. "
        "Strip the Read line prefix (line number + tab) before matching.\n"
        "- The edit fails if `old_string` is not found, or is found more than once: add "
        "surrounding lines to make it unique, or set `replace_all: true` to replace every occurrence.\n"
        "- `new_string` must differ from `old_string`. Use Write to create a new file."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The path of the file to modify"},
            "old_string": {"type": "string", "description": "The text to replace"},
            "new_string": {
                "type": "string",
                "description": "The text to replace it with (must be different from old_string)",
            },
            "replace_all": {
                "type": "boolean",
                "default": False,
                "description": "Replace all occurrences of old_string (default false)",
            },
        },
        "required": ["file_path", "old_string", "new_string"],
        "additionalProperties": False,
    }

    @guarded
    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        raw, old, new = input["file_path"], input["old_string"], input["new_string"]
        replace_all = bool(input.get("replace_all", False))
        if old == new:
            raise ToolError("old_string and new_string are the same; there is nothing to change.")
        if not old:
            raise ToolError("old_string is empty; give the exact text to replace (use Write to create a file).")
        path = resolve(raw, context.root)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ToolError(f"{raw} {what}; Edit changes an existing file (use Write to create one).")
        # newline="" so "\r\n" files keep their endings and match what Read showed
        with path.open("r", encoding="utf-8", newline="") as fh:
            text = fh.read()
        count = text.count(old)
        if count == 0:
            raise ToolError(
                f"old_string was not found in {raw}. It must match exactly, including whitespace "
                "and indentation, without the line-number prefix Read adds; Read the file again "
                "and copy the text."
            )
        if count > 1 and not replace_all:
            raise ToolError(
                f"old_string matches {count} times in {raw}. Include more surrounding lines so it "
                "matches exactly once, or set replace_all to true to replace every occurrence."
            )
        updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write(updated)
        rel = relative(path, context.root)
        done = f"{count} occurrences" if count > 1 else "1 occurrence"
        return ToolOutput(f"Edited {rel}: replaced {done}", files_changed=[rel])
