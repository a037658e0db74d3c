"""Skills: folders of instructions an agent reads only when its task calls for them (Claude Code's Agent Skills).

A skill is ``<folder>/SKILL.md`` with frontmatter ``name`` (default: the folder's name),
``description`` (required: it is what the model chooses by) and optional ``allowed-tools``, found in
the folders below; one with ``disable-model-invocation: true`` is for a person to start, and is left out::

    <user>/skills/*/SKILL.md           (~/.claude/skills, or $CLAUDE_CONFIG_DIR/skills)
    <project>/.claude/skills/*/SKILL.md

Of two skills with one name the user's wins, as in Claude Code. Progressive disclosure: only the
names and descriptions go into the system prompt; the ``Skill`` tool returns a skill's body when
the model asks for it, and any file beside it (``file``), fenced to the skill's folder, so a
user's skill outside the workspace can still be read in full and nothing else through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import claude_dir, project_root
from ..errors import AgentFileError
from .loader import read_frontmatter
from .tools.base import ToolContext, ToolOutput
from .tools.paths import relative, resolve, walk_files
from .tools.schema import ToolError, guarded

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 1024
MAX_FILE_CHARS = 100_000
MAX_LISTED_FILES = 50


@dataclass
class Skill:
    name: str
    description: str
    folder: Path
    allowed_tools: list[str] | None = None
    """``allowed-tools``, shown with the skill; it grants nothing here (there is no prompt to skip)."""
    model_invocable: bool = True
    """False for ``disable-model-invocation: true``: a skill only a person starts, so never offered here."""

    def body(self) -> str:
        return read_frontmatter((self.folder / "SKILL.md").read_text(encoding="utf-8"), str(self.folder))[1].strip()

    def files(self) -> list[str]:
        return [relative(p, self.folder) for p in walk_files(self.folder) if p.name != "SKILL.md"]


def skill_dirs(workspace: Path, user_dir: Path | None = None) -> list[Path]:
    """The folders holding skill folders, highest precedence first."""
    return [(user_dir or claude_dir()) / "skills", project_root(workspace.resolve()) / ".claude" / "skills"]


def load_skills(workspace: Path, *, user_dir: Path | None = None) -> tuple[dict[str, Skill], list[AgentFileError]]:
    """Every skill visible from ``workspace`` by name, and the SKILL.md files that could not be read."""
    skills: dict[str, Skill] = {}
    errors: list[AgentFileError] = []
    for base in skill_dirs(workspace, user_dir):
        for path in sorted(base.glob("*/SKILL.md")) if base.is_dir() else []:
            try:
                skill = parse_skill(path)
            except AgentFileError as exc:
                errors.append(exc)
                log.warning("skipping skill: %s", exc)
                continue
            if skill.model_invocable:  # `disable-model-invocation: true`: only a person may start it, and none is here
                skills.setdefault(skill.name, skill)
    return skills, errors


def parse_skill(path: Path) -> Skill:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentFileError(str(path), "(file)", f"cannot be read: {exc}") from None
    front, _ = read_frontmatter(text, str(path))
    name = str(front.get("name") or path.parent.name).strip()
    description = front.get("description")
    if not isinstance(description, str) or not description.strip():
        raise AgentFileError(str(path), "description", "a skill needs a description: it is how an agent "
                             "decides to use it; say what the skill does and when to use it")
    tools = front.get("allowed-tools")
    allowed = [t.strip() for t in tools.split(",")] if isinstance(tools, str) else tools if isinstance(tools, list) else None
    return Skill(name, " ".join(description.split())[:MAX_DESCRIPTION], path.parent, allowed,
                 model_invocable=front.get("disable-model-invocation") is not True)


def visible(skills: dict[str, Skill], names: list[str] | None) -> dict[str, Skill]:
    """The skills an agent file's ``skills:`` list lets it see (all of them without a list)."""
    if names is None:
        return dict(skills)
    for name in names:
        if name not in skills:
            log.warning("agent names skill %r, which was not found (found: %s)", name, ", ".join(sorted(skills)))
    return {n: s for n, s in skills.items() if n in names}


def skills_prompt(skills: dict[str, Skill]) -> str:
    if not skills:
        return ""
    listing = "\n".join(f"- {s.name}: {s.description}" for s in sorted(skills.values(), key=lambda s: s.name))
    return ("# Skills\n\nSkills are instructions for particular kinds of work, sometimes with files beside them. "
            "When your task matches a skill's description, call the Skill tool with its name and follow what it "
            f"says before you start.\n\n{listing}")


class SkillTool:
    """``Skill``: a skill's instructions, or one file from its folder, on demand."""

    name = "Skill"
    read_only = True
    description = ("Loads a skill: its full instructions, its folder, and the files beside it. Call it with "
                   "`skill` when your task matches a skill listed in the system prompt; add `file` (a path "
                   "inside the skill's folder) to read one of its files.")
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "skill": {"type": "string", "description": "The skill's name, as listed in the system prompt."},
            "file": {"type": "string", "description": "A file inside the skill's folder to read instead."},
        },
        "required": ["skill"],
        "additionalProperties": False,
    }

    def __init__(self, skills: dict[str, Skill]) -> None:
        self.skills = skills

    @guarded
    async def call(self, input: dict[str, Any], context: ToolContext) -> ToolOutput:
        skill = self.skills.get(input["skill"])
        if skill is None:
            raise ToolError(f"No skill named {input['skill']!r}. Skills: {', '.join(sorted(self.skills)) or 'none'}.")
        if input.get("file"):
            path = resolve(input["file"], skill.folder)
            if not path.is_file():
                raise ToolError(f"{input['file']} is not a file of skill {skill.name!r}; its files: "
                                f"{', '.join(skill.files()[:MAX_LISTED_FILES]) or 'none'}")
            text = path.read_text(encoding="utf-8", errors="replace")
            cut = f"\n\n[cut at {MAX_FILE_CHARS:,} of {len(text):,} characters]" if len(text) > MAX_FILE_CHARS else ""
            return ToolOutput(text[:MAX_FILE_CHARS] + cut)
        files = skill.files()
        shown = "\n".join(f"- {f}" for f in files[:MAX_LISTED_FILES]) + (
            f"\n- … and {len(files) - MAX_LISTED_FILES} more" if len(files) > MAX_LISTED_FILES else "")
        about = f"\n\nThe skill's folder is {skill.folder}."
        if files:
            about += f" Files beside it (read one with Skill and `file`):\n{shown}"
        return ToolOutput(f"# Skill: {skill.name}\n\n{skill.body()}{about}")
