"""Selection benchmark: what each strategy keeps of what N attempts find, on the shipped task set.

For N = 1, 2, 4, 8 and each strategy (checks, checks+judge, pairwise, vote): selected@N and the selector
loss (any@N − selected@N) over the 12 tasks of examples/eval, and the model calls the strategy spent on
selecting, all in one table. The attempts are the seeded scripted solver (model "steady", rates.toml),
so any@N is the same for every strategy at a given N. The judge is a scripted model with a seeded
accuracy (JUDGE_ACCURACY): it knows, from examples/eval/answers, whether a diff is the real fix or the
weak one, and says so truthfully with that probability. The figures are synthetic: they show how the
strategies behave against a visible check weaker than the hidden one, not how real models do.

Run: .venv/bin/python bench/selection.py
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from flotilla import Session
from flotilla.patterns._judge import RUBRIC
from flotilla.testing import FunctionModel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "eval"
SIZES = (1, 2, 4, 8)
STRATEGIES = ("checks", "checks+judge", "pairwise", "vote")
JUDGE_ACCURACY = 0.8


def kind(task: str, diff: str) -> str:
    """``fix`` when the diff's added lines are the real fix's, else ``weak``."""
    added = {line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")}
    fix = {line.strip() for line in (EXAMPLES / "answers" / task / "fix.py").read_text().splitlines()}
    return "fix" if added and added <= fix else "weak"


def truthful(text: str) -> bool:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
    return random.Random(seed).random() < JUDGE_ACCURACY


def judge(request) -> str:
    text = request.messages[0].content
    task = re.search(r"Task (\S+):", text).group(1)
    honest = truthful(text)
    if request.system == RUBRIC:
        good = kind(task, text.split("<diff>", 1)[1]) == "fix"
        return json.dumps({"score": 9 if good == honest else 4, "reasons": "scripted"})
    a, b = (kind(task, part.split("<diff>", 1)[1].split("</diff>", 1)[0])
            for part in text.split("<attempt label=")[1:3])
    better = "A" if a == b or (a == "fix") == honest else "B"
    return json.dumps({"better": better, "reason": "scripted"})


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        configs = []
        for n in SIZES:
            for strategy in STRATEGIES:
                path = root / f"{strategy.replace('+', '-')}-{n}.toml"
                judge_line = 'judge = "scripted:judge"\n' if strategy in ("checks+judge", "pairwise") else ""
                path.write_text(f'name = "{strategy} N={n}"\nmodels = ["steady"]\nsamples = {n}\n'
                                f'select = "{strategy}"\n{judge_line}'
                                f'agent = "cmd:{{python}} {EXAMPLES}/solver.py {{model}} {{workspace}} {{spec_file}}"\n')
                configs.append(path)
        session = Session(root, durable=False, store=root / "store.db",
                          models={"scripted:judge": lambda: FunctionModel(judge, name="scripted:judge")})
        started = time.perf_counter()
        report = session.eval_sync(EXAMPLES / "tasks", configs)
        seconds = time.perf_counter() - started
    rows = {r["config"]: r for r in report.summary}
    calls: dict[str, int] = {}
    for result in report.results:
        calls[result["config"]] = calls.get(result["config"], 0) + ((result["selection"] or {}).get("calls") or 0)
    tasks = len(report.tasks)
    print(f"selection on examples/eval ({tasks} tasks, scripted solver 'steady', scripted judge "
          f"{JUDGE_ACCURACY:.0%} accurate; synthetic figures)\n")
    head = f"{'strategy':<14}" + "".join(f"{f'N={n}':>22}" for n in SIZES)
    print(head)
    print(f"{'any@N':<14}" + "".join(f"{rows[f'checks N={n}']['any@N']:>22}" for n in SIZES))
    for strategy in STRATEGIES:
        cells = []
        for n in SIZES:
            r = rows[f"{strategy} N={n}"]
            cells.append(f"{r['selected@N']:>2} sel, {r['selector_loss']:>2} lost, {calls[r['config']]:>3} calls")
        print(f"{strategy:<14}" + "".join(f"{c:>22}" for c in cells))
    print(f"\ncells: selected@N (of {tasks}), selector loss, model calls spent on selection over all tasks; "
          f"{len(report.results)} races in {seconds:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
