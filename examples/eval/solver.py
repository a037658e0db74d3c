"""A scripted coding agent for the example task set: seeded per-task success rates, no model, no key.

Run as a race's external agent (see one.toml): ``solver.py MODEL WORKSPACE SPEC_FILE``. The task is named
by the spec's first words ("Task 05-count-vowels: …"), the attempt by its worktree's folder (a1, a2 …).
Its outcome is drawn from ``random.Random(f"{MODEL}/{TASK}/{ATTEMPT}")`` against the rates in
rates.toml: ``fix`` writes answers/TASK/fix.py (passes the visible and the hidden check), ``weak``
writes answers/TASK/weak.py (passes only the visible one; a task without one falls to ``none``),
``none`` leaves the bug. Same inputs, same outcome, every run: ``python solver.py --table MODEL N``
prints every task's outcomes for attempts a1..aN, so an eval's numbers can be checked by hand.

When ``FLOTILLA_EVAL_LOG`` is set, it appends what it was given (spec and the files it could see) there;
``FLOTILLA_EVAL_DELAY`` makes each attempt take that many seconds (to stop an eval midway in a test).
"""

import json
import os
import random
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rates(model: str, task: str) -> dict:
    table = tomllib.loads((HERE / "rates.toml").read_text())
    if model not in table:
        sys.exit(f"solver: no rates for model {model!r} in rates.toml (it has {', '.join(sorted(table))})")
    entry = table[model]
    return {**{k: v for k, v in entry.items() if k != "tasks"}, **entry.get("tasks", {}).get(task, {})}


def outcome(model: str, task: str, attempt: str) -> str:
    r = rates(model, task)
    u = random.Random(f"{model}/{task}/{attempt}").random()
    kind = "fix" if u < r["fix"] else "weak" if u < r["fix"] + r.get("weak", 0.0) else "none"
    if kind == "weak" and not (HERE / "answers" / task / "weak.py").is_file():
        kind = "none"
    return kind


def main() -> None:
    if sys.argv[1] == "--table":
        model, n = sys.argv[2], int(sys.argv[3])
        for task in sorted(p.name for p in (HERE / "tasks").iterdir() if p.is_dir()):
            print(task, " ".join(outcome(model, task, f"a{i}") for i in range(1, n + 1)))
        return
    model, workspace, spec_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spec = spec_file.read_text()
    task = spec.split(":", 1)[0].removeprefix("Task ").strip()
    kind = outcome(model, task, workspace.name)
    if os.environ.get("FLOTILLA_EVAL_LOG"):
        seen = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*")
                      if p.is_file() and ".git" not in p.relative_to(workspace).parts)
        with open(os.environ["FLOTILLA_EVAL_LOG"], "a") as log:
            log.write(json.dumps({"task": task, "attempt": workspace.name, "model": model, "spec": spec,
                                  "files": seen, "outcome": kind}) + "\n")
    time.sleep(float(os.environ.get("FLOTILLA_EVAL_DELAY", "0")))
    if kind != "none":
        (workspace / "lib.py").write_text((HERE / "answers" / task / f"{kind}.py").read_text())
    print(f"{task} {workspace.name}: {kind}")


if __name__ == "__main__":
    main()
