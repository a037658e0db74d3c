"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): a race started by the CLI in
another process appears live, its board shows every attempt with its check and the winner, a merge from
the board lands; a live run's transcript grows without a reload, and a steer sent from the page reaches
the model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from flotilla.store import SQLiteStore
from test_race_support import CHECK, make_repo, sh
from web_support import driver, env, needs_browser, screenshot, serving, wait_for

needs_browser()  # skips this module, saying why, without Chromium or Playwright


def test_a_cli_race_appears_live_and_its_board_merges_the_winner(tmp_path: Path, page: Any) -> None:
    repo = make_repo(tmp_path / "r")
    store = tmp_path / "store.db"
    SQLiteStore(store).close()
    go = tmp_path / "go"
    for ui in serving(store, repo):
        page.goto(ui.url)
        page.wait_for_selector("#live.on")  # the event stream is open before the race begins
        assert page.locator("table.runs").count() == 0
        race = subprocess.Popen([*driver(tmp_path), "race", "Fix add", "-m", "scripted:slowgood", "-m", "scripted:bad",
                                 "--check", CHECK, "--pick", "manual", "--no-durable", "--json",
                                 "--sandbox", "off"], cwd=repo,  # a1 waits on a file outside its worktree
                                env=env(store, FLOTILLA_TEST_GO=str(go)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            row = page.locator("table.runs tr", has_text="Fix add").filter(has_text="running")
            row.wait_for()  # the race, started in another process, arrived without a reload
            row.locator("a").click()
            a1, a2 = page.locator("article[data-attempt=a1]"), page.locator("article[data-attempt=a2]")
            a2.locator(".check", has_text="✗").wait_for()  # the fast attempt's check, while a1 still works
            a1.locator(".badge", has_text="running").wait_for()  # a1 waits for `go` in its Bash call
            assert "no check yet" in a1.inner_text()
            page.evaluate("window.sameDocument = true")
            go.touch()
            page.locator("article.winner[data-attempt=a1]").wait_for()  # the board followed the race to its end
            assert page.evaluate("window.sameDocument") is True
            out, err = race.communicate(timeout=120)
            assert race.returncode == 0, err
        finally:
            if race.poll() is None:
                race.kill()
                race.wait()
        race_id = json.loads(out)["race_id"]
        assert "winner" not in a2.get_attribute("class")
        assert "✓" in a1.locator(".check").inner_text() and "scripted:slowgood" in a1.inner_text()
        assert "✗" in a2.locator(".check").inner_text() and "scripted:bad" in a2.inner_text()
        a2.locator(".check summary").click()
        assert "AssertionError: 6" in a2.locator(".check pre").inner_text()  # the failed check's output
        assert "+1" in a1.inner_text() and "−1" in a1.inner_text()
        shot = screenshot(page, "race-board.png")
        assert shot.stat().st_size > 10_000

        page.click("form.compare button")
        panes = page.locator(".pane")
        assert panes.count() == 2
        assert "return a + b" in panes.nth(0).inner_text() and "return a * b" in panes.nth(1).inner_text()

        page.goto(ui.url)
        listed = page.locator("table.runs tr", has_text=race_id)
        assert "race" in listed.inner_text() and "scripted:bad, scripted:slowgood" in listed.inner_text()
        assert "done" in listed.inner_text() and race_id in page.locator("#needs-you").inner_text()
        screenshot(page, "runs-list.png")
        page.click(f"#needs-you a[href='/runs/{race_id}']")
        page.click("article[data-attempt=a1] button:has-text('merge a1')")
        page.wait_for_selector(".said")
        assert "merged a1 into main" in page.locator(".said").inner_text()
        assert "return a + b" in (repo / "calc.py").read_text()
        assert sh(repo, "git", "status", "--porcelain") == ""


def _waiting_run(tmp_path: Path, store: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*driver(tmp_path), "run", "general-purpose", "wait", "--model", "scripted:waiter",
                             "--json", "--no-durable"], cwd=tmp_path, env=env(store), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def started() -> str | None:
        runs = SQLiteStore(store).list_runs()
        return runs[0]["id"] if runs and len(SQLiteStore(store).events(runs[0]["id"], "MessageAdded")) >= 2 else None

    return proc, wait_for(started, "the run to reach its Bash call")


def test_a_live_transcript_grows_without_a_reload_and_a_steer_reaches_the_model(tmp_path: Path, page: Any) -> None:
    store = tmp_path / "store.db"
    SQLiteStore(store).close()
    proc, run_id = _waiting_run(tmp_path, store)
    try:
        for ui in serving(store, tmp_path):
            page.goto(f"{ui.url}runs/{run_id}")
            transcript = page.locator("#transcript")
            assert "while [ ! -f go ]" in transcript.inner_text()
            page.fill("#steer-msg", "prefer small commits")
            page.click("form.steer button")
            page.wait_for_selector(".said")
            assert f"sent to run {run_id}" in page.locator(".said").inner_text()
            page.wait_for_selector("#live.on")
            screenshot(page, "run-detail.png")  # live: the steer box, the stop button, the transcript so far
            page.evaluate("window.sameDocument = true")  # gone if the page reloads
            (tmp_path / "go").touch()
            page.locator(".note.steer", has_text="prefer small commits").wait_for()
            answer = page.locator(".msg.assistant", has_text="last said:")
            answer.wait_for()
            assert page.evaluate("window.sameDocument") is True
            page.locator(".badge.s-done").first.wait_for()  # the summary re-rendered too
            screenshot(page, "run-detail-done.png")
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            said = "last said: Steering from the person running this agent: prefer small commits"
            assert json.loads(out)["text"] == said  # what the model was sent: the steer, from the page
            assert said in answer.inner_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

