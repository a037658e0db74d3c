"""Project memory: the ``CLAUDE.md`` and ``AGENTS.md`` files an agent reads before its task, as Claude Code finds them.

Read in this order, each file once (the later, nearer the working directory, weigh more)::

    <user>/CLAUDE.md                       the user's own, for every project (<user> is ~/.claude or $CLAUDE_CONFIG_DIR)
    for each folder from the project root down to the working directory:
        CLAUDE.md   .claude/CLAUDE.md      the project's, checked in
        AGENTS.md                          the cross-vendor convention, after CLAUDE.md of the same folder
        CLAUDE.local.md                    the user's private notes for this project

A file may import another with ``@path`` (relative to the importing file, ``@~/…`` or absolute),
outside code spans and fenced blocks, up to ``MAX_IMPORT_DEPTH`` hops; a file already read (a cycle,
or ``@AGENTS.md`` in a CLAUDE.md) is not read again. The walk stops at the project root (the nearest
``.git`` or ``flotilla.toml``), so a race attempt reads its worktree's copy and never the main
checkout's. A file over the cap is cut with a note saying so; the model is never told less silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ..config import Settings, claude_dir, project_root

MAX_IMPORT_DEPTH = 5
"""Hops of ``@path`` imports followed from a memory file, as Claude Code does."""

PER_FOLDER = (("CLAUDE.md", "project"), (".claude/CLAUDE.md", "project"), ("AGENTS.md", "agents"),
              ("CLAUDE.local.md", "local"))
ABOUT = {
    "user": "the user's private global instructions for all projects",
    "project": "project instructions, checked into the codebase",
    "agents": "project instructions for coding agents (AGENTS.md)",
    "local": "the user's private project instructions, not checked in",
}
_IMPORT = re.compile(r"(?:^|(?<=\s))@((?:[^\s\\]|\\ )+)")
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_SPAN = re.compile(r"`[^`\n]*`")


class MemorySettings(BaseModel):
    """``[memory]`` in flotilla.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Whether memory files go into agents' system prompts at all."""
    max_file_chars: int = 40_000
    """A file longer than this is cut, with a note; Claude Code warns past the same size."""
    max_total_chars: int = 120_000
    """Memory past this many characters in all is left out, with a note naming the files."""


@dataclass
class MemoryFile:
    path: Path
    kind: str
    """``user``, ``project``, ``agents``, ``local`` or ``import``."""
    text: str
    size: int
    """Characters in the file on disk (``text`` may be cut)."""
    imported_by: Path | None = None
    cut: str = ""
    """Why the text is shorter than the file, when it is."""

    @property
    def about(self) -> str:
        return f"imported by {self.imported_by}" if self.imported_by else ABOUT[self.kind]


@dataclass
class Memory:
    files: list[MemoryFile]

    def prompt(self) -> str:
        """The system-prompt section: every file with its path, in reading order; empty with no files."""
        if not self.files:
            return ""
        parts = ["# Memory\n\nThe instructions below come from the memory files of this project and its user "
                 "(CLAUDE.md, AGENTS.md). Follow them; where two disagree, the later one wins."]
        for f in self.files:
            body = f.text.rstrip() + (f"\n\n[{f.cut}]" if f.cut else "")
            parts.append(f"Contents of {f.path} ({f.about}):\n\n{body}")
        return "\n\n".join(parts)


def load_memory(workspace: Path, settings: Settings | None = None, *, user_dir: Path | None = None) -> Memory:
    """The memory an agent working in ``workspace`` receives (see the module docstring)."""
    options = settings.section("memory", MemorySettings) if settings is not None else MemorySettings()
    if not options.enabled:
        return Memory([])
    workspace = workspace.resolve()
    root = project_root(workspace)
    reader = _Reader(options, workspace)
    reader.add((user_dir or claude_dir()) / "CLAUDE.md", "user")
    steps = workspace.relative_to(root).parts  # the project root is the workspace or one of its parents
    for folder in (root.joinpath(*steps[:i]) for i in range(len(steps) + 1)):
        for name, kind in PER_FOLDER:
            reader.add(folder / name, kind)
    return Memory(reader.files)


class _Reader:
    def __init__(self, options: MemorySettings, workspace: Path) -> None:
        self.options, self.workspace = options, workspace
        self.files: list[MemoryFile] = []
        self.seen: set[Path] = set()
        self.total = 0

    def add(self, path: Path, kind: str, imported_by: Path | None = None, depth: int = 0) -> None:
        try:
            real = path.resolve()
            if real in self.seen or not real.is_file():
                return
            text = real.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, RuntimeError):
            return  # unreadable or not text: Claude Code skips it too
        self.seen.add(real)
        entry = MemoryFile(path=real, kind=kind, text=text, size=len(text), imported_by=imported_by)
        self._cap(entry)
        self.files.append(entry)
        if depth < MAX_IMPORT_DEPTH:
            for target in imports(text, real.parent):
                self.add(target, "import", real, depth + 1)

    def _cap(self, entry: MemoryFile) -> None:
        room = self.options.max_total_chars - self.total
        cap = min(self.options.max_file_chars, max(room, 0))
        if entry.size > cap:
            entry.text = entry.text[:cap]
            which = "memory.max_file_chars" if cap == self.options.max_file_chars else "memory.max_total_chars"
            rest = ("read the rest with the Read tool" if self.workspace in entry.path.parents
                    else "the rest is not shown")
            entry.cut = (f"flotilla: {entry.path.name} was cut here: it has {entry.size:,} characters and "
                         f"{cap:,} fit under {which} in flotilla.toml; {rest}")
        self.total += len(entry.text)


def imports(text: str, base: Path) -> list[Path]:
    """The files ``text`` imports with ``@path``, outside code blocks and spans, resolved against ``base``."""
    prose = _SPAN.sub("", _FENCE.sub("", text))
    found = []
    for match in _IMPORT.finditer(prose):
        raw = match.group(1).replace("\\ ", " ").rstrip(".,;:)")
        path = Path(raw).expanduser() if raw.startswith("~") else Path(raw)
        found.append(path if path.is_absolute() else base / path)
    return found
