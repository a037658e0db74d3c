"""Approve from the page: a fan-out started from Python in another process waits (durably, on the store)
for its plan's approval; the dashboard lists it under "needs you", shows the plan, and its approve button
sends the signal the run waits on, so the fan-out goes on and merges."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from flotilla.demo_fanout import CHECK
from test_durable_fanout_crash import setup
from test_fanout_cli import SCRIPT
from web_support import needs_browser, screenshot, serving

needs_browser()  # skips this module, saying why, without Chromium or Playwright

DRIVER = f"""
import json
from flotilla import Session
result = Session(".", durable=False).fanout_sync("Fix the failing tests", lead="fake:lead",
                                                 models=["fake:prices", "fake:names", "fake:dates"], check={CHECK!r})
print(json.dumps({{"status": result["status"], "merged": result.get("merged")}}))
"""


def test_approve_from_the_page_lets_a_waiting_fanout_go_on(tmp_path: Path, page: Any) -> None:
    fake, _url, repo, env = setup(tmp_path, SCRIPT)
    run = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=repo, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        store = repo / ".flotilla" / "flotilla.db"
        for ui in serving(store, repo):
            page.goto(ui.url)
            waiting = page.locator("#needs-you li", has_text="waits for your approval")
            waiting.wait_for()  # appears live once the lead has submitted its plan
            waiting.locator("a").click()
            plan = page.locator(".board", has_text="plan")
            assert all(s in plan.inner_text() for s in ("prices", "names", "dates"))
            page.click("button:has-text('approve')")
            page.locator(".said", has_text="approved approve of run").wait_for()
            out, err = run.communicate(timeout=120)
            assert run.returncode == 0, err
            result = json.loads(out)
            assert result["status"] != "rejected" and result["merged"], result
            page.locator(".board h2", has_text="slices").wait_for()  # the page followed it to its report
            assert page.locator("article[data-slice=prices]").count() == 1
            screenshot(page, "fanout.png")
            page.goto(f"{ui.url}usage")
            assert "tokens by model" in page.inner_text("main") and "cost unknown" in page.inner_text("main")
            screenshot(page, "usage.png")
    finally:
        for proc in (run, fake):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
