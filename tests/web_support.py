"""Helpers for the dashboard's browser tests: the system Chromium driven by Playwright, `flotilla ui`
as a real process, and a driver that runs the CLI with scripted models (a race, a run that waits)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("FLOTILLA_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
FLOTILLA = str(Path(sys.executable).parent / "flotilla")

DRIVER = '''
import os, sys
from flotilla.messages import MessagesRequest
from flotilla.testing import ScriptedModel, reply, tool_call
from flotilla.testing.registry import register_scripted

def write(body):
    return lambda: ScriptedModel([tool_call("Write", {"file_path": "calc.py", "content": body}), reply("done")])

def echo_last(request: MessagesRequest):
    return reply("last said: " + request.messages[-1].text())

register_scripted("good", write("def add(a, b):\\n    return a + b\\n"))
GO = os.environ.get("FLOTILLA_TEST_GO", "go")  # a file the test makes when the slow attempt may go on
register_scripted("slowgood", lambda: ScriptedModel([
    tool_call("Bash", {"command": f"while [ ! -f {GO} ]; do sleep 0.05; done"}),
    tool_call("Write", {"file_path": "calc.py", "content": "def add(a, b):\\n    return a + b\\n"}), reply("done")]))
register_scripted("bad", write("def add(a, b):\\n    return a * b\\n"))
register_scripted("waiter", lambda: ScriptedModel([
    tool_call("Bash", {"command": "while [ ! -f go ]; do sleep 0.05; done"}), echo_last]))
from flotilla.cli.main import main
sys.argv = ["flotilla", *sys.argv[1:]]
main()
'''


def needs_browser() -> Any:
    """Skips the module when the system Chromium or Playwright is missing (`.ci/run` installs both)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (the dev extra)")


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def env(store: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "FLOTILLA_STORE": str(store), "COLUMNS": "200", **extra}


def driver(folder: Path) -> list[str]:
    path = folder / "driver.py"
    path.write_text(DRIVER)
    return [sys.executable, str(path)]


class Ui:
    """`flotilla ui` in a process of its own, on a free port; ``url`` is what it printed."""

    def __init__(self, store: Path, cwd: Path, *args: str, extra_env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([FLOTILLA, "ui", "--port", "0", "--store", str(store), *args], cwd=cwd,
                                     env=env(store, **(extra_env or {})), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = self.proc.stderr.readline()  # "flotilla ui: http://…" once it is bound
        found = re.search(r"(http://\S+)", first)
        if not found:
            self.stop()
            raise AssertionError(f"flotilla ui did not start: {first}{self.proc.stderr.read()}")
        self.link = found.group(1)
        self.url = self.link.split("?")[0]
        self.said: list[str] = []  # the rest of its stderr, read so that the pipe never fills and blocks it
        threading.Thread(target=lambda: self.said.extend(self.proc.stderr), daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serving(store: Path, cwd: Path, *args: str, extra_env: dict[str, str] | None = None) -> Iterator[Ui]:
    ui = Ui(store, cwd, *args, extra_env=extra_env)
    try:
        yield ui
    finally:
        ui.stop()


def wait_for(predicate: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
