"""``flotilla demo``: a whole race, offline, in a throwaway repository.

It builds a small Python library whose test fails, races three scripted
attempts on the real agent loop, tools, worktrees and checks (only the model
is scripted), ranks them, merges the winner and runs the library's tests.

- ``careful`` reads the code, fixes the bug in one line and runs the tests;
- ``hasty`` makes a change that does not fix it: its check fails;
- ``overloaded`` answers 529 on every call, so its attempt finishes through
  its fallback, ``backup``, which rewrites the file: it passes, with a bigger diff.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from .messages import MessagesRequest
from .testing import FunctionModel, ScriptedModel, fail, reply, tool_call

STATS = '''"""Small statistics helpers."""


def mean(values):
    """The arithmetic mean of a non-empty sequence of numbers."""
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / (len(values) - 1)


def spread(values):
    """The largest value minus the smallest."""
    return max(values) - min(values)
'''

TESTS = '''import unittest

from statlib import mean, spread


class StatsTest(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(mean([2, 4, 6]), 4)

    def test_mean_of_one(self):
        self.assertEqual(mean([5]), 5)

    def test_spread(self):
        self.assertEqual(spread([3, 9, 1]), 8)

    def test_empty(self):
        with self.assertRaises(ValueError):
            mean([])


if __name__ == "__main__":
    unittest.main()
'''

BACKUP_STATS = STATS.replace(
    '''    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / (len(values) - 1)''',
    '''    values = list(values)
    if len(values) == 0:
        raise ValueError("mean() of an empty sequence")
    total = 0
    for value in values:
        total += value
    return total / len(values)''')

SPEC = "statlib.mean gives wrong answers (mean([2, 4, 6]) is not 4). Fix it so the tests pass."


def check_command() -> str:
    """pytest when it is installed (its summary is parsed), else unittest."""
    if importlib.util.find_spec("pytest") is not None:
        return f"{sys.executable} -m pytest -q -p no:cacheprovider -p no:asyncio"
    return f"{sys.executable} -m unittest discover -s tests -t ."


def make_library(root: Path) -> Path:
    """A git repository holding ``statlib`` (with the bug) and its tests, committed on ``main``."""
    (root / "statlib").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "statlib" / "__init__.py").write_text('from .stats import mean, spread\n\n__all__ = ["mean", "spread"]\n')
    (root / "statlib" / "stats.py").write_text(STATS)
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "test_stats.py").write_text(TESTS)
    (root / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=flotilla demo", "-c", "user.email=demo@localhost", "commit", "-q", "-m",
                  "statlib: mean and spread"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    subprocess.run(["git", "config", "user.name", "flotilla demo"], cwd=root, check=True)
    subprocess.run(["git", "config", "user.email", "demo@localhost"], cwd=root, check=True)
    return root


def scripts(check: str) -> dict[str, Any]:
    """Each scripted model's steps, by name: real tool calls the real tools carry out."""
    return {
        "careful": [
            tool_call("Read", {"file_path": "statlib/stats.py"}, text="Let me read the code first."),
            tool_call("Edit", {"file_path": "statlib/stats.py", "old_string": "(len(values) - 1)",
                               "new_string": "len(values)"}, text="The mean divides by n - 1; it must be n."),
            tool_call("Bash", {"command": check}),
            reply("Fixed: mean() divided by len - 1 instead of len. The tests pass."),
        ],
        "hasty": [
            tool_call("Edit", {"file_path": "statlib/stats.py", "old_string": "(len(values) - 1)",
                               "new_string": "(len(values) + 1)"}),
            reply("Done."),
        ],
        "backup": [
            tool_call("Write", {"file_path": "statlib/stats.py", "content": BACKUP_STATS},
                      text="I will rewrite mean() explicitly."),
            tool_call("Bash", {"command": check}),
            reply("Rewrote mean(); the tests pass."),
        ],
    }


def models(steps: dict[str, Any]) -> dict[str, Any]:
    """The demo's models by name, each a factory of a fresh one (a script is consumed as it runs);
    ``scripted:overloaded`` is a provider answering 529 every time."""
    def always_overloaded(request: MessagesRequest) -> Any:
        raise fail(529, message="Overloaded (scripted)")

    made: dict[str, Any] = {f"scripted:{name}": (lambda name=name: ScriptedModel(list(steps[name]), name=f"scripted:{name}"))
                            for name in steps}
    made["scripted:overloaded"] = lambda: FunctionModel(always_overloaded, name="scripted:overloaded")
    return made


async def _race(root: Path, store: Any, console: Console, live: bool) -> Any:
    from .config import load_settings
    from .patterns._race_report import LiveView
    from .session import Session

    check = check_command()
    settings = load_settings(cwd=root, environ={}, user_file=root / "no-user-config.toml")
    session = Session(project=root, durable=False, store=store, settings=settings, models=models(scripts(check)),
                      home=root / "no-home")
    with LiveView(console, enabled=live) as view:
        async with session:
            return await session.race(SPEC, check=check, plans=_plans(), pick="auto", sink=view)


def _estimate_line() -> str:
    from .models.catalog import Catalog
    from .patterns.race import RaceConfig, estimate

    plans = _plans()
    _, total = estimate(plans, config=RaceConfig(tokens_per_attempt=10_000, output_tokens_per_attempt=1_000),
                        catalog=Catalog.load())
    return (f"estimate: {len(plans)} attempts × ~${total / len(plans):.3f} = ~${total:.3f} "
            "(scripted models are priced like haiku; nothing is billed)")


def _plans() -> list[Any]:
    from .patterns.race import AttemptPlan

    return [AttemptPlan("a1", "implementer", "scripted:careful"),
            AttemptPlan("a2", "implementer", "scripted:hasty"),
            AttemptPlan("a3", "implementer", "scripted:overloaded", fallback=["scripted:backup"])]


def run_demo(console: Console | None = None, *, keep: bool = False, live: bool | None = None) -> int:
    """Runs the demo end to end; returns the exit code of the library's own tests after the merge."""
    from .patterns._race_report import outcome_view
    from .store import SQLiteStore

    console = console or Console(width=None if sys.stdout.isatty() else 110)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="flotilla-demo-")) / "statlib"
    try:
        make_library(root)
        console.print(f"[bold]flotilla demo[/]: a race in a throwaway repository, {root}")
        console.print(f"  task: {SPEC}")
        console.print("  attempts: a1 careful, a2 hasty, a3 overloaded (falls back to backup)")
        console.print("  only the models are scripted: the agent loop, tools, worktrees and checks are real")
        console.print(f"  check: {check_command()}\n  {_estimate_line()}\n")
        store = SQLiteStore(root / ".flotilla" / "flotilla.db")
        live = console.is_terminal if live is None else live
        outcome = asyncio.run(_race(root, store, console, live))
        console.print(outcome_view(store.get_run(outcome.race_id)["result"]))
        fallbacks = [e for e in store.events(outcome.attempts_by_name()["a3"].run_id, "FallbackUsed")]
        if fallbacks:
            console.print(f"a3's model was overloaded: {fallbacks[0]['from_model']} → {fallbacks[0]['to_model']} "
                          f"({fallbacks[0]['reason']})")
        console.print(f"\n$ {check_command()}   [dim](in {root}, after the merge)[/]")
        tests = subprocess.run(check_command(), shell=True, cwd=root, capture_output=True, text=True)
        console.print("\n".join((tests.stdout + tests.stderr).strip().splitlines()[-5:]), highlight=False,
                      markup=False)
        verdict = "[bold green]the library's tests pass[/]" if tests.returncode == 0 else "[bold red]tests fail[/]"
        console.print(f"\n{verdict} — demo done in {time.monotonic() - started:.1f}s. "
                      + (f"The repository is kept at {root}." if keep else "The temporary repository is removed."))
        store.close()
        return tests.returncode
    finally:
        if not keep:
            shutil.rmtree(root.parent, ignore_errors=True)
