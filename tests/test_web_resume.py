"""A crashed run, resumed from the page: `flotilla run` (durable) is killed with -9 mid tool call; the
dashboard lists it as crashed under "needs you"; its resume button starts `flotilla resume` in a process
of its own, after which the page calls it running again (the durable runtime's heartbeat, not the dead
pid in its row), and the run finishes where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from flotilla.store import SQLiteStore
from flotilla.workspaces.gc import pid_alive
from test_durable_race_crash import FLOTILLA, counts, with_fake_provider
from test_race_support import make_repo
from web_support import needs_browser, serving, wait_for

needs_browser()  # skips this module, saying why, without Chromium or Playwright
WAIT = {"tool_use": {"name": "Bash", "input": {"command": "while [ ! -f go ]; do sleep 0.05; done"}}}
SCRIPT = {"waiter": [WAIT, {"text": "resumed and done"}]}


def test_a_crashed_run_resumed_from_the_page_finishes(tmp_path: Path, page: Any) -> None:
    repo = make_repo(tmp_path / "r")
    fake, url, env = with_fake_provider(tmp_path, SCRIPT, repo)
    store_path = repo / ".flotilla" / "flotilla.db"
    resumed: list[int] = []
    try:
        run = subprocess.Popen([FLOTILLA, "run", "general-purpose", "wait", "--model", "fake:waiter", "--json"],
                               cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: store_path.exists() and counts(url).get("waiter") == 1
                 and len(SQLiteStore(store_path).events_after(0, limit=50)) >= 3, "the run to be in its Bash call")
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        store = SQLiteStore(store_path)
        (record,) = store.list_runs()
        for ui in serving(store_path, repo, extra_env={"FAKE_PROVIDER_KEY": "test-key"}):
            page.goto(ui.url)
            page.locator("#needs-you li", has_text="crashed").locator("a").click()
            assert page.locator(".meta .badge").inner_text() == "crashed"
            page.click("button:has-text('resume')")
            page.locator(".said", has_text=f"resuming run {record['id']}").wait_for()

            def running() -> bool:
                time.sleep(0.2)
                page.reload()
                return page.locator(".meta .badge").inner_text() == "running"

            wait_for(running, "the page to call the resumed run running")
            rows = store.execute("SELECT pid FROM flotilla_executors")
            resumed += [r["pid"] for r in rows if pid_alive(r["pid"])]
            (repo / "go").touch()
            page.locator(".msg.assistant", has_text="resumed and done").wait_for()  # live, where it stopped
            page.locator(".meta .badge", has_text="done").wait_for()
        assert counts(url)["waiter"] == 2  # the one call made before the crash was not sent again
        assert store.get_run(record["id"])["status"] == "done"
    finally:
        (repo / "go").touch()
        deadline = time.monotonic() + 30
        while any(pid_alive(p) for p in resumed) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in resumed:  # a resumed run that did not end: it is ours to end
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        fake.terminate()
        fake.wait(timeout=10)
