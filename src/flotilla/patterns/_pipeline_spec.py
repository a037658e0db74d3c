"""A pipeline file: ``.flotilla/pipelines/NAME.toml``, the stages of a role pipeline in order.

TOML, because flotilla's own configuration is TOML already (``flotilla.toml``, race configurations):
one format to learn, read by the standard library, no YAML dependency and none of its implicit types.
A stage names an agent from the agent files, so its tools are the agent's and the runtime enforces
them (a ``plan`` or ``review`` stage runs read-only whatever its file says)::

    [[stage]]
    name = "architect"        # letters, digits, - _ .
    agent = "architect"
    kind = "plan"             # plan: answers through submit_plan; its plan is PLAN.md and the gate's subject
    gate = true               # stop after it until `flotilla approve RUN` (or --yes)

    [[stage]]
    name = "backend"
    agent = "implementer"
    group = "implement"       # consecutive stages of one group run at once, each in its own worktree
    instructions = "Do the server side of the plan."
    inputs = ["task", "plan", "summaries"]   # what it is given: never a transcript

    [[stage]]
    name = "security-reviewer"
    agent = "security-reviewer"
    kind = "review"           # a findings loop on the pipeline branch …
    fix = ["backend", "frontend"]            # … whose blocking findings go back to these stages
    rounds = 2

The built-in ``default`` is below (``DEFAULT``); a project file of the same name replaces it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError

DEFAULT = '''\
description = "architect (read-only) → backend ∥ frontend → test-writer → security-reviewer (read-only), whose findings go back to the implementers"

[[stage]]
name = "architect"
agent = "architect"
kind = "plan"
gate = true

[[stage]]
name = "backend"
agent = "implementer"
group = "implement"
instructions = "You are the backend implementer: do the server side of the plan (logic, data, APIs, commands). Leave user-interface work to the frontend implementer, who works at the same time on another branch."

[[stage]]
name = "frontend"
agent = "implementer"
group = "implement"
instructions = "You are the frontend implementer: do the user-facing side of the plan (UI, templates, styles, client code). Leave server work to the backend implementer, who works at the same time on another branch. If the plan has no user-facing part, change nothing and say so."

[[stage]]
name = "test-writer"
agent = "test-writer"
instructions = "Write tests for what the plan promises and the implementers built; do not change the code under test."

[[stage]]
name = "security-reviewer"
agent = "security-reviewer"
kind = "review"
fix = ["backend", "frontend"]
rounds = 2
'''

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"


class Stage(BaseModel):
    """One stage of a pipeline."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    agent: str
    """An agent from the agent files (``flotilla agents``)."""
    kind: Literal["plan", "work", "review"] = "work"
    model: str | None = None
    """Its model; default the run's ``--model``, else the agent file's."""
    group: str | None = None
    gate: bool = False
    instructions: str = ""
    inputs: list[Literal["task", "plan", "summaries"]] = ["task", "plan", "summaries"]
    fix: list[str] = []
    rounds: int | None = Field(None, ge=1)


class Pipeline(BaseModel):
    """A pipeline file."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    stage: list[Stage] = Field(min_length=1)


def folder(root: Path) -> Path:
    return root / ".flotilla" / "pipelines"


def available(root: Path) -> dict[str, str]:
    """Every pipeline by name, with where it comes from (the project's files replace the built-in)."""
    found = {"default": "built-in"}
    if folder(root).is_dir():
        found.update({p.stem: str(p) for p in sorted(folder(root).glob("*.toml"))})
    return found


def load(root: Path, name: str) -> Pipeline:
    """The pipeline ``name``, checked: a bad file is a ``UserError`` naming the file, the key and the fix."""
    path = folder(root) / f"{name}.toml"
    if path.is_file():
        text, where = path.read_text(), str(path)
    elif name == "default":
        text, where = DEFAULT, "the built-in default pipeline"
    else:
        raise UserError(f"no pipeline named {name!r}: write {path}, or use one of {', '.join(available(root))}")
    try:
        spec = Pipeline.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        e = exc.errors()[0]
        key = ".".join(str(p) for p in e["loc"])
        raise UserError(f"{where}: {key}: {e['msg']} (see `flotilla pipeline list` and the pipeline docs)") from None
    problems = errors(spec)
    if problems:
        raise UserError(f"{where}: " + "; ".join(problems))
    return spec


def errors(spec: Pipeline) -> list[str]:
    """What is wrong with a pipeline's stages beyond their types."""
    out, seen, work = [], set(), set()
    for n, s in enumerate(spec.stage):
        if s.name in seen:
            out.append(f"stage {s.name!r} is named twice")
        seen.add(s.name)
        if s.kind == "plan" and any(p.kind != "plan" for p in spec.stage[:n]):
            out.append(f"plan stage {s.name!r} must come before the other stages")
        if s.kind == "review":
            for f in s.fix:
                if f not in work:
                    out.append(f"review stage {s.name!r}: fix names {f!r}, which is not an earlier work stage")
        elif s.fix:
            out.append(f"stage {s.name!r}: only a review stage has `fix`")
        if s.group and s.kind != "work":
            out.append(f"stage {s.name!r}: only work stages run in a parallel group")
        if s.group and any(p.group == s.group for p in spec.stage[:n - 1]) and spec.stage[n - 1].group != s.group:
            out.append(f"stage {s.name!r}: the stages of group {s.group!r} must be next to each other")
        if s.kind == "work":
            work.add(s.name)
    return out

