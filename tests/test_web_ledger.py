"""A ledger on the page: `flotilla demo ledger` builds its features in another process; the ledger's page
shows each feature with flotilla's verdict (passes), its verify command, sessions and cost, and the log."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from web_support import FLOTILLA, needs_browser, screenshot, serving

needs_browser()  # skips this module, saying why, without Chromium or Playwright


def test_the_ledger_page_shows_features_with_passes_and_the_log(tmp_path: Path, page: Any) -> None:
    demo = subprocess.run([FLOTILLA, "demo", "ledger", "--keep"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    kept = re.search(r"kept at (\S+?)\.?$", demo.stdout, re.M)
    assert demo.returncode == 0 and kept, demo.stdout + demo.stderr
    repo = Path(kept.group(1))
    try:
        for ui in serving(repo / ".flotilla" / "flotilla.db", repo):
            page.goto(f"{ui.url}?kind=ledger")
            page.locator("table.runs a").first.click()
            board = page.locator(".board", has_text="features")
            assert "3 of 3 pass" in board.locator("h2").first.inner_text()
            for feature in ("add", "sub", "mul"):
                card = page.locator(f"article[data-feature={feature}]")
                assert "✓ passes" in card.inner_text() and "sessions" in card.inner_text()
            assert "init: 3 features planned" in page.locator("ul.log").inner_text()
            screenshot(page, "ledger.png")
    finally:
        shutil.rmtree(repo.parent, ignore_errors=True)
