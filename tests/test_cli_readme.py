"""The README's command table and the commands the program has are the same set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

FLOTILLA = [str(Path(sys.executable).parent / "flotilla")]
README = Path(__file__).parent.parent / "README.md"


def commands(*group: str) -> set[str]:
    """The command names ``flotilla [GROUP] --help`` lists."""
    shown = subprocess.run([*FLOTILLA, *group, "--help"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"}).stdout
    section = shown.split("Commands")[1]
    return set(re.findall(r"^│ ([a-z][a-z-]*) ", section, re.M))


def test_the_command_table_lists_every_command_and_only_those():
    text = README.read_text()
    table = text.split("## What it does")[1].split("###")[0]
    named = set(re.findall(r"`flotilla ([a-z][a-z-]*)", table))
    keys = {k for cell in re.findall(r"`flotilla keys ([a-z\\|]+)`", table) for k in cell.split("\\|")}
    assert named == commands()
    assert keys == commands("keys")
