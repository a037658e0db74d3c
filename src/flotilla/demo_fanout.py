"""``flotilla demo fanout``: a whole fan-out, offline, in a throwaway repository.

The repository holds three independent bugs, one failing test per bug, and a passing test of the
rest (the ``--check``). A scripted lead explores it read-only and plans three slices through
``submit_plan``; three scripted workers, each in its own worktree, fix one bug each, except that the
``dates`` worker's fix is wrong, so its proof fails and it stays on its branch; the two proven slices
go through the merge queue into the integration branch and then the base. Only the models are
scripted: the agent loop, the tools, git, the proofs and the checks are real.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from .testing import ScriptedModel, reply, tool_call

FILES = {
    "shop/__init__.py": "",
    "shop/prices.py": "def with_discount(price, percent):\n    return price - price * percent\n",
    "shop/names.py": "def display_name(first, last):\n    return f\"{first} {first}\"\n",
    "shop/dates.py": "def is_leap(year):\n    return year % 4 == 0\n",
    "shop/basics.py": "def total(items):\n    return sum(items)\n",
    "tests/__init__.py": "",
    "tests/test_prices.py": "import unittest\n\nfrom shop.prices import with_discount\n\n\nclass T(unittest.TestCase):\n"
                            "    def test_discount(self):\n        self.assertEqual(with_discount(200, 10), 180)\n",
    "tests/test_names.py": "import unittest\n\nfrom shop.names import display_name\n\n\nclass T(unittest.TestCase):\n"
                           "    def test_name(self):\n        self.assertEqual(display_name('Ada', 'Lovelace'), 'Ada Lovelace')\n",
    "tests/test_dates.py": "import unittest\n\nfrom shop.dates import is_leap\n\n\nclass T(unittest.TestCase):\n"
                           "    def test_century(self):\n        self.assertFalse(is_leap(1900))\n"
                           "        self.assertTrue(is_leap(2000))\n",
    "tests/test_basics.py": "import unittest\n\nfrom shop.basics import total\n\n\nclass T(unittest.TestCase):\n"
                            "    def test_total(self):\n        self.assertEqual(total([1, 2]), 3)\n",
    ".gitignore": "__pycache__/\n",
}
JOB = "Fix every bug the failing tests show (tests/test_*.py); prove each fix with its test."


def test_command(module: str) -> str:
    return f"{sys.executable} -B -m unittest -q tests.{module}"


CHECK = test_command("test_basics")


def make_shop(root: Path) -> Path:
    """A git repository with the three bugs, committed on ``main``."""
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "flotilla demo"],
                 ["config", "user.email", "demo@localhost"], ["add", "-A"], ["commit", "-q", "-m", "shop"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def slice_plan(area: str, title: str) -> dict[str, Any]:
    return {"id": area, "title": title, "instructions": f"{title}. The failing test is tests/test_{area}.py; "
            f"fix shop/{area}.py, not the test.", "files": [f"shop/{area}.py"], "proof": test_command(f"test_{area}")}


PLAN = {"slices": [slice_plan("prices", "with_discount treats percent as a fraction"),
                   slice_plan("names", "display_name repeats the first name"),
                   slice_plan("dates", "is_leap ignores the century rule")]}


def lead_steps(plan: dict[str, Any] = PLAN) -> list[Any]:
    return [tool_call("Glob", {"pattern": "tests/test_*.py"}, text="Let me see the tests."),
            tool_call("submit_plan", plan, text="Three independent bugs, one slice each."),
            reply("Two of three bugs are fixed and merged; the leap-year fix did not pass its test, "
                  "look at branch dates first.")]


def fix(path: str, old: str, new: str, summary: str) -> list[Any]:
    return [tool_call("Read", {"file_path": path}),
            tool_call("Edit", {"file_path": path, "old_string": old, "new_string": new}),
            reply(summary)]


WORKERS = {
    "prices": fix("shop/prices.py", "price * percent", "price * percent / 100",
                  "with_discount took percent as a fraction; it divides by 100 now."),
    "names": fix("shop/names.py", "{first} {first}", "{first} {last}", "display_name used first twice."),
    "dates": fix("shop/dates.py", "year % 4 == 0", "year % 4 == 0 and year % 100 != 0",
                 "is_leap now skips centuries."),  # wrong: 2000 is a leap year; its proof fails
}


def demo_models() -> dict[str, Any]:
    """The lead (one instance: it plans, then reads the summaries) and a factory per worker."""
    made: dict[str, Any] = {f"scripted:{n}": (lambda n=n, s=s: ScriptedModel(list(s), name=f"scripted:{n}"))
                            for n, s in WORKERS.items()}
    made["scripted:lead"] = ScriptedModel(lead_steps(), name="scripted:lead")
    return made


def run_fanout_demo(console: Any, *, keep: bool = False) -> int:
    """Runs the demo end to end; 0 when the two proven slices reached ``main`` and the third did not."""
    from ._demo_room import room
    from .patterns._fanout_report import render

    with room("shop", make_shop, demo_models(), keep=keep) as r:
        console.print(f"[bold]flotilla demo fanout[/]: a fan-out in a throwaway repository, {r.root}")
        console.print(f"  job: {JOB}\n  lead: scripted, read-only; workers: prices, names, dates (its fix is wrong)")
        console.print(f"  check after each merge: {CHECK}\n")
        result = r.session.fanout_sync(JOB, lead="scripted:lead", models=["scripted:prices", "scripted:names",
                                                                          "scripted:dates"], check=CHECK, yes=True)
        console.print(render(result), highlight=False, markup=False)
        ok = {s["id"]: s["status"] for s in result["slices"]} == {"prices": "merged", "names": "merged",
                                                                  "dates": "unproven"} and bool(result["merged"])
        return r.finish(console, ok)
