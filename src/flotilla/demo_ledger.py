"""``flotilla demo ledger``: a long-horizon build, offline, in a throwaway repository.

A scripted initializer plans a three-feature calculator (``add``, ``sub``, ``mul``), scaffolds an empty
module and a smoke test (``init.sh``) and submits the features through ``submit_features``; then three
worker sessions, each a fresh agent run, build one feature each. The second worker first tries to mark
every feature done by writing ``features.json``, and the runtime refuses it. After each session
flotilla runs the feature's verify and the smoke test itself and only then flips ``passes``. Only the
models are scripted: the agent loop, the tools, the permission rules, git and the checks are real.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from .testing import FunctionModel, ScriptedModel, reply, tool_call, tool_calls

PY = shlex.quote(sys.executable)
GOAL = "A tiny calculator module, calc.py, with add, sub and mul."
SMOKE = f"{PY} -B -c 'import calc'\n"
CALC = '"""A tiny calculator, built one feature per session."""\n'
OPS = {"add": "a + b", "sub": "a - b", "mul": "a * b"}
CHECKS = {"add": "add(2, 3) == 5", "sub": "sub(5, 3) == 2", "mul": "mul(4, 3) == 12"}


def verify(op: str) -> str:
    return f"{PY} -B -c 'from calc import {op}; assert {CHECKS[op]}'"


FEATURES = [{"id": op, "name": f"calc.{op}", "description": f"calc.{op}(a, b) returns {OPS[op]}",
             "verify": verify(op)} for op in OPS]


def make_repo(root: Path) -> Path:
    """An empty project (a README) committed on ``main``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("# calc\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "flotilla demo"],
                 ["config", "user.email", "demo@localhost"], ["add", "-A"], ["commit", "-q", "-m", "empty project"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def initializer_steps(features: list[dict[str, Any]] = FEATURES) -> list[Any]:
    return [tool_call("Glob", {"pattern": "*"}, text="An empty project: I scaffold it and plan three features."),
            tool_calls(("Write", {"file_path": "calc.py", "content": CALC}),
                       ("Write", {"file_path": "init.sh", "content": SMOKE})),
            tool_call("submit_features", {"features": features, "smoke": "sh init.sh",
                                          "current_state": "Scaffolded: an empty calc.py and the smoke test init.sh."})]


def calc_with(*ops: str, **bodies: str) -> str:
    """calc.py with ``ops`` implemented; ``bodies`` replaces an op's (a wrong one, say: ``add="a - b"``)."""
    return CALC + "".join(f"\n\ndef {op}(a, b):\n    return {bodies.get(op, OPS[op])}\n" for op in ops)


def session_steps(content: str, summary: str, *extra: Any) -> list[Any]:
    """A worker: reads PROGRESS.md, runs git log and the smoke test, does ``extra`` calls, writes calc.py."""
    return [tool_call("Read", {"file_path": "PROGRESS.md"}),
            tool_call("Bash", {"command": "git log --oneline -5 && sh init.sh"}),
            *extra, tool_call("Write", {"file_path": "calc.py", "content": content}), reply(summary)]


def cheat_write() -> Any:
    done = [{**f, "passes": True} for f in FEATURES]
    return tool_call("Write", {"file_path": "features.json", "content": json.dumps(done, indent=2)},
                     text="Quicker to mark them all done.")


DEMO_SESSIONS = {1: session_steps(calc_with("add"), "add is implemented."),
                 2: session_steps(calc_with("add", "sub"), "sub is implemented.", cheat_write()),
                 3: session_steps(calc_with("add", "sub", "mul"), "mul is implemented; every feature is done.")}


def by_session(scripts: dict[int, list[Any]], name: str = "scripted:workers") -> FunctionModel:
    """One model for every worker session: the script of the session its prompt names, played from the
    turn the transcript has reached (so a fresh run of the same session starts its script again); a step
    may be a function of the request."""

    def answer(request: Any) -> Any:
        first = request.messages[0].content
        text = first if isinstance(first, str) else " ".join(getattr(b, "text", "") for b in first)
        number = int(re.search(r"You are session (\d+)", text).group(1))  # type: ignore[union-attr]
        step = scripts[number][sum(1 for m in request.messages if m.role == "assistant")]
        return step(request) if callable(step) else step

    return FunctionModel(answer, name=name)


def demo_models() -> dict[str, Any]:
    return {"scripted:initializer": lambda: ScriptedModel(initializer_steps(), name="scripted:initializer"),
            "scripted:workers": by_session(DEMO_SESSIONS)}


def run_ledger_demo(console: Any, *, keep: bool = False) -> int:
    """Runs the demo end to end; 0 when three sessions made every feature pass and the cheat was refused."""
    from ._demo_room import room
    from .patterns._ledger_files import status_table

    with room("calc", make_repo, demo_models(), keep=keep) as r:
        console.print(f"[bold]flotilla demo ledger[/]: a long-horizon build in a throwaway repository, {r.root}")
        console.print(f"  goal: {GOAL}\n  initializer and workers: scripted; session 2 tries to edit features.json\n")
        init = r.session.ledger_sync("init", GOAL, model="scripted:initializer")
        console.print(f"initializer: {len(init['features'])} features planned, smoke test "
                      f"{'green' if init['smoke_passed'] else 'red'}", highlight=False)
        work = r.session.ledger_sync("work", until_done=True, sessions=5, model="scripted:workers")
        for row in work["sessions"]:
            said = f"session {row['number']}: {row['feature']} {'passes' if row['passed'] else 'still fails'}"
            for denial in row["denials"]:
                said += f"\n  refused: {denial}"
            console.print(said, highlight=False, markup=False)
        console.print(f"stopped: {work['stop']}\n", highlight=False)
        console.print(status_table(r.store.get_run(work["ledger_id"])["meta"]), highlight=False, markup=False)
        ok = work["all_pass"] and len(work["sessions"]) == 3 and bool(work["sessions"][1]["denials"])
        return r.finish(console, ok)
