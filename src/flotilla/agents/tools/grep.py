"""``Grep``: regex search over file contents, by ripgrep when installed, else in Python.

Both backends print the same lines (ripgrep's ``--no-heading`` format, files in
``--sort path`` order), so the model sees one tool whichever runs. One difference
remains: ripgrep honours ``.gitignore``; the Python backend only skips ``.git``.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...errors import UserError
from .base import ToolContext, ToolOutput
from .paths import glob_regex, relative, resolve, walk_files
from .schema import ToolError, guarded

MAX_LINE_CHARS = 500
MAX_OUTPUT_CHARS = 30_000
RG_TIMEOUT_S = 60.0
MODES = ("content", "files_with_matches", "count")

# ripgrep's names for the common file types, for the Python backend's `type` filter
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "py": ("*.py", "*.pyi"), "js": ("*.js", "*.jsx", "*.mjs", "*.cjs"),
    "ts": ("*.ts", "*.tsx", "*.mts", "*.cts"), "rust": ("*.rs",), "go": ("*.go",),
    "java": ("*.java",), "c": ("*.c", "*.h"), "cpp": ("*.cpp", "*.cc", "*.cxx", "*.hpp", "*.hh", "*.h"),
    "md": ("*.md", "*.markdown"), "markdown": ("*.md", "*.markdown"), "json": ("*.json",),
    "yaml": ("*.yml", "*.yaml"), "toml": ("*.toml",), "sh": ("*.sh", "*.bash"),
    "html": ("*.html", "*.htm"), "css": ("*.css",), "ruby": ("*.rb",), "txt": ("*.txt",),
}


@dataclass
class _Query:
    root: Path
    target: Path
    pattern: str
    mode: str
    ignore_case: bool
    line_numbers: bool
    before: int
    after: int
    multiline: bool
    glob: str | None
    type: str | None


class Grep:
    """Searches file contents. ``backend``: ``auto`` (ripgrep if on PATH), ``ripgrep`` or ``python``."""

    name = "Grep"
    read_only = True
    description = (
        "A content search tool built on ripgrep.\n\n"
        "- Supports full regex syntax (e.g. `log.*Error`, `function\\s+\\w+`).\n"
        "- Filter files with `glob` (e.g. `*.js`, `*.{ts,tsx}`) or `type` (e.g. `py`, `js`, `rust`).\n"
        "- `output_mode`: `files_with_matches` (default) lists file paths, `content` shows matching "
        "lines (with `-n` line numbers, `-A`/`-B`/`-C` context), `count` shows matches per file.\n"
        "- `head_limit` keeps the first N lines or entries, `offset` skips N first.\n"
        "- Patterns match within one line unless `multiline: true`.\n"
        "- Paths are relative to the workspace root."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "The regular expression to search for in file contents"},
            "path": {"type": "string", "description": "File or directory to search in. Defaults to the workspace root."},
            "glob": {"type": "string", "description": 'Glob pattern to filter files (e.g. "*.js", "*.{ts,tsx}")'},
            "type": {"type": "string", "description": "File type to search (e.g. js, py, rust, go, java)"},
            "output_mode": {
                "type": "string",
                "enum": list(MODES),
                "description": 'Output mode: "content", "files_with_matches" (default) or "count"',
            },
            "-i": {"type": "boolean", "description": "Case insensitive search"},
            "-n": {"type": "boolean", "description": "Show line numbers in content mode (default true)"},
            "-A": {"type": "integer", "minimum": 0, "description": "Lines to show after each match (content mode)"},
            "-B": {"type": "integer", "minimum": 0, "description": "Lines to show before each match (content mode)"},
            "-C": {"type": "integer", "minimum": 0, "description": "Lines to show before and after each match (content mode)"},
            "head_limit": {"type": "integer", "minimum": 0, "description": "Show only the first N lines or entries (0: all)"},
            "offset": {"type": "integer", "minimum": 0, "description": "Skip the first N lines or entries"},
            "multiline": {"type": "boolean", "description": "Let patterns span lines; `.` matches newlines (default false)"},
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }

    def __init__(self, backend: Literal["auto", "ripgrep", "python"] = "auto") -> None:
        found = shutil.which("rg")
        if backend == "ripgrep" and not found:
            raise UserError("Grep(backend='ripgrep') needs the rg executable on PATH: install "
                            "ripgrep, or use backend='auto' to fall back to Python")
        self.rg = found if backend in ("auto", "ripgrep") else None
        self.backend = "ripgrep" if self.rg else "python"

    @guarded
    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        root = context.root.resolve()
        target = resolve(input.get("path") or ".", root)
        if not target.exists():
            raise ToolError(f"path {input.get('path')} does not exist; use Glob to find it.")
        context_lines = input.get("-C") or 0
        query = _Query(
            root=root, target=target, pattern=input["pattern"],
            mode=input.get("output_mode") or "files_with_matches",
            ignore_case=bool(input.get("-i")), line_numbers=input.get("-n", True) is not False,
            before=int(input.get("-B", context_lines)), after=int(input.get("-A", context_lines)),
            multiline=bool(input.get("multiline")), glob=input.get("glob"), type=input.get("type"),
        )
        if self.rg:
            lines = await _ripgrep(self.rg, query)
        else:
            lines = await asyncio.to_thread(_python_grep, query)
        return ToolOutput(_format(lines, query.mode, input.get("offset") or 0, input.get("head_limit") or 0))


def _format(lines: list[str], mode: str, offset: int, head_limit: int) -> str:
    if not lines:
        return "No matches found"
    total = len(lines)
    shown = lines[offset:]
    if head_limit:
        shown = shown[:head_limit]
    shown = [ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS] + " …[line truncated]" for ln in shown]
    body = "\n".join(shown)
    if len(body) > MAX_OUTPUT_CHARS:
        body = body[:MAX_OUTPUT_CHARS] + "\n…[output truncated; narrow the search or use head_limit]"
    note = ""
    if offset or len(shown) < total:
        note = f"\n\n(showing {len(shown)} of {total} results from offset {offset}; use offset and head_limit for more)"
    if mode == "files_with_matches":
        return f"Found {total} file{'s' if total != 1 else ''}\n{body}{note}"
    if mode == "count":
        matches = sum(int(ln.rsplit(":", 1)[1]) for ln in lines)
        return f"{body}\n\nFound {matches} matching lines across {total} files{note}"
    return body + note


async def _ripgrep(rg: str, q: _Query) -> list[str]:
    args = [rg, "--no-config", "--hidden", "--glob", "!.git", "--color", "never", "--sort", "path",
            "--with-filename", "--no-heading", "--no-messages"]
    if q.mode == "files_with_matches":
        args.append("--files-with-matches")
    elif q.mode == "count":
        args.append("--count")
    else:
        args.append("-n" if q.line_numbers else "-N")
        args += ["-B", str(q.before), "-A", str(q.after)]
    if q.ignore_case:
        args.append("-i")
    if q.multiline:
        args += ["-U", "--multiline-dotall"]
    if q.type:
        args += ["--type", q.type]
    if q.glob:
        args += ["--glob", q.glob]
    args += ["-e", q.pattern]
    if q.target != q.root:
        args += ["--", relative(q.target, q.root)]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=q.root, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RG_TIMEOUT_S)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        proc.kill()
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise ToolError(f"the search took longer than {RG_TIMEOUT_S:.0f} s; narrow it with path, glob or type") from exc
    if proc.returncode == 2 and not out:
        raise ToolError("ripgrep: " + err.decode("utf-8", "replace").strip())
    return out.decode("utf-8", "replace").splitlines()


def _python_grep(q: _Query) -> list[str]:
    flags = re.MULTILINE | (re.IGNORECASE if q.ignore_case else 0) | (re.DOTALL if q.multiline else 0)
    try:
        regex = re.compile(q.pattern, flags)
    except re.error as exc:
        raise ToolError(f"invalid regular expression {q.pattern!r}: {exc}") from exc
    if q.type and q.type not in FILE_TYPES:
        raise ToolError(f"unknown file type {q.type!r}; known: {', '.join(FILE_TYPES)}")
    files = [q.target] if q.target.is_file() else walk_files(q.target)
    out: list[str] = []
    for path in files:
        if q.target.is_dir() and not _selected(path.relative_to(q.target).as_posix(), path.name, q):
            continue
        data = path.read_bytes()
        if b"\x00" in data:  # binary, as ripgrep judges it
            continue
        text = data.decode("utf-8", "replace")
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        matched = _matched_lines(regex, text, lines, q.multiline)
        if not matched:
            continue
        rel = relative(path, q.root)
        if q.mode == "files_with_matches":
            out.append(rel)
        elif q.mode == "count":
            out.append(f"{rel}:{len(matched)}")
        else:
            _content(out, rel, lines, matched, q)
    return out


def _selected(rel: str, name: str, q: _Query) -> bool:
    if q.glob:
        negate = q.glob.startswith("!")
        pattern = q.glob.lstrip("!")
        # like ripgrep: a glob without "/" matches the file name at any depth
        hit = bool(glob_regex(pattern).match(name if "/" not in pattern else rel))
        if hit == negate:
            return False
    if q.type:
        return any(glob_regex(g).match(name) for g in FILE_TYPES[q.type])
    return True


def _matched_lines(regex: re.Pattern[str], text: str, lines: list[str], multiline: bool) -> list[int]:
    if not multiline:
        return [i for i, line in enumerate(lines) if regex.search(line)]
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    hit: set[int] = set()
    for m in regex.finditer(text):
        first = bisect.bisect_right(starts, m.start()) - 1
        last = bisect.bisect_right(starts, max(m.end() - 1, m.start())) - 1
        hit.update(range(first, min(last, len(lines) - 1) + 1))
    return sorted(hit)


def _content(out: list[str], rel: str, lines: list[str], matched: list[int], q: _Query) -> None:
    hits = set(matched)
    spans: list[list[int]] = []
    for i in matched:
        lo, hi = max(i - q.before, 0), min(i + q.after, len(lines) - 1)
        if spans and lo <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    for lo, hi in spans:
        if out and (q.before or q.after):
            out.append("--")
        for j in range(lo, hi + 1):
            sep = ":" if j in hits else "-"
            number = f"{j + 1}{sep}" if q.line_numbers else ""
            out.append(f"{rel}{sep}{number}{lines[j]}")
