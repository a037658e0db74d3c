"""Piped output as a CI log or ``grep`` sees it: one line per message, tables as wide as they need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_race_support import CHECK, make_repo

FLOTILLA = [str(Path(sys.executable).parent / "flotilla")]


def flotilla(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([*FLOTILLA, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**environ, "FLOTILLA_STORE": str(cwd.parent / "store.db"), **env})


def long_folder(tmp_path: Path) -> Path:
    folder = tmp_path / ("a-rather-long-folder-name-" * 3) / ("and-another-one-below-it-" * 3)
    assert len(str(folder)) > 120
    return folder


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_a_refusal_under_a_long_path_is_one_line_with_the_whole_path(tmp_path):
    plain = long_folder(tmp_path) / "plain"
    plain.mkdir(parents=True)
    done = flotilla(plain, "race", "x", "--agent", "cmd:true", "--check", "true")
    assert done.returncode == 2
    assert f"{plain} is not a git repository" in line_with(done.stderr, "not a git repository")

    repo = make_repo(long_folder(tmp_path) / "repo")
    (repo / "calc.py").write_text("x\n")
    dirty = flotilla(repo, "race", "x", "--agent", "cmd:true", "--check", "true")
    line = line_with(dirty.stderr, "uncommitted changes")
    assert dirty.returncode == 2 and str(repo) in line and "--allow-dirty" in line


def test_a_piped_race_table_never_breaks_a_model_name(tmp_path):
    repo = make_repo(long_folder(tmp_path) / "repo")
    model = "lab:lab-fixer-good-with-a-long-name-that-would-not-fit-in-eighty-columns"
    fix = f"cmd:{sys.executable} -c \"import pathlib; p = pathlib.Path('calc.py'); " \
          "p.write_text(p.read_text().replace('a - b', 'a + b'))\" {model}"
    done = flotilla(repo, "race", "Fix add", "--agent", fix, "-m", model, "--check", CHECK, "--no-durable")
    assert done.returncode == 0, done.stderr
    row = line_with(done.stdout, " a1 ")
    assert model in row and "✓" in row
    assert "merged a1 into main" in done.stdout

    narrow = flotilla(repo, "runs", COLUMNS="60")
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 60  # COLUMNS still sets the width

    listed = flotilla(repo, "runs")
    assert "Fix add" in line_with(listed.stdout, " race ")


COLOURED = """import sys
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.testing.registry import register_scripted
from flotilla.cli.main import main
register_scripted("colourful", lambda: ScriptedModel([
    tool_call("Bash", {"command": "printf '\\\\033[1;31mred alert\\\\033[0m\\\\n'"}), reply("done")]))
main()
"""


def test_colour_codes_from_a_command_are_not_stored_or_shown(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(COLOURED)
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env = {**environ, "FLOTILLA_STORE": str(tmp_path / "store.db")}
    done = subprocess.run([sys.executable, str(driver), "run", "general-purpose", "colour", "-m", "scripted:colourful",
                           "--json", "--no-durable"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    (tmp_path / "x").mkdir()
    shown = flotilla(tmp_path / "x", "show", run_id)  # the store is tmp_path / "store.db"
    assert "← red alert" in shown.stdout and "\x1b" not in shown.stdout
    import sqlite3  # every text the store holds (its file's raw bytes may hold 0x1b in page headers)

    with sqlite3.connect(tmp_path / "store.db") as db:
        stored = [str(v) for table in ("events", "runs") for row in db.execute(f"SELECT * FROM {table}") for v in row]
    assert stored and not any("\x1b" in v for v in stored)
