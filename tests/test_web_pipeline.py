"""The pipeline and review pages in Chromium: two pipelines started by `flotilla pipeline run` (the fake
provider playing the roles) exit at their gates; the runs list says each waits for approve or reject;
one page shows the plan and its Approve continues that pipeline to its end in a process of its own (the
next stages' models are called, a file outside the plan is flagged); the other's Reject ends it with its reason, nothing more called. A
review (scripted writer and reviewer, in this process) shows its rounds of findings and its diff."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from flotilla import Session
from flotilla.config import load_settings
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel
from review_support import FIXED, finding, review, write
from test_durable_race_crash import counts, with_fake_provider
from test_fanout_cli import cli
from test_pipeline_gate import STAGES, calls, script, write as write_file
from test_race_support import make_repo
from web_support import needs_browser, screenshot, serving, wait_for

needs_browser()  # skips this module, saying why, without Chromium or Playwright


def _run(db: Path, run_id: str) -> dict[str, Any]:
    with sqlite3.connect(db, timeout=30) as c:
        status, result = c.execute("SELECT status, result FROM runs WHERE id = ?", (run_id,)).fetchone()
    return {"status": status, "result": json.loads(result) if result else None}


def _gated(repo: Path, env: dict[str, str], suffix: str) -> str:
    """A pipeline run by the CLI up to its gate (the CLI exits there); its id."""
    flags = [x for s in STAGES for x in ("--stage-model", f"{s}=fake:{s}{suffix}")]
    started = cli(repo, env, "pipeline", "run", f"Fix add and add a page{suffix}", *flags)
    assert started.returncode == 0 and "waiting: `flotilla approve" in started.stdout, started.stdout + started.stderr
    return started.stdout.split()[1].rstrip(":")


def _review(repo: Path, db: Path) -> str:
    """A two-round review on the same store: a blocking finding, fixed, then clean. In a thread of its own:
    the module's Playwright holds this one's event loop."""
    writer = ScriptedModel(write("def add(a, b):\n    return a\n") + write(FIXED, summary="fixed the sign"),
                           name="scripted:claude-writer")
    reviewer = ScriptedModel([review("changes_needed", finding("sign", "P0", 0.95, title="add drops b"),
                                     finding("style", "P3", 0.5, title="name the sum")),
                              review("clean", finding("style", "P3", 0.5, title="name the sum"), resolved=["sign"])],
                             name="scripted:gpt-reviewer")
    settings = load_settings(cwd=repo, environ={}, user_file=repo / "no-user-config.toml")
    session = Session(project=repo, durable=False, store=SQLiteStore(db), settings=settings,
                      models={writer.name: writer, reviewer.name: reviewer}, home=repo / "no-home")
    done: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: done.append(session.review_sync("Fix add", writer=writer.name,
                                                                             reviewer=reviewer.name)))
    worker.start()
    worker.join(timeout=120)
    assert done and done[0]["ended"] == "clean", done
    return done[0]["review_id"]


@pytest.fixture(scope="module")
def gated(tmp_path_factory: Any) -> Any:
    tmp = tmp_path_factory.mktemp("pipelines")
    repo = make_repo(tmp / "r")
    steps = script()
    steps["frontend"] = [calls(write_file("ui.html", "<p>calc</p>\n"), write_file("ui.css", "p {}\n")), {"text": "a page"}]
    steps["architect2"] = [{"tool_uses": [{"name": "submit_plan", "input": {
        "plan": "# Plan B\n\nrewrite everything", "files": ["calc.py"], "summary": "rewrite"}}]}]
    fake, url, env = with_fake_provider(tmp, steps, repo)
    try:
        approving, rejecting = _gated(repo, env, ""), _gated(repo, env, "2")
        db = repo / ".flotilla" / "flotilla.db"
        reviewed = _review(repo, db)
        for ui in serving(db, repo, extra_env={"FAKE_PROVIDER_KEY": env["FAKE_PROVIDER_KEY"]}):
            yield {"ui": ui, "url": url, "db": db, "approve": approving, "reject": rejecting, "review": reviewed}
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_approve_on_the_pipeline_page_continues_it_to_its_end(gated: Any, page: Any) -> None:
    ui, rid, db = gated["ui"], gated["approve"], gated["db"]
    page.goto(ui.url)
    waiting = page.locator("#needs-you li", has_text=rid)
    assert "waiting: approve or reject" in waiting.inner_text()
    assert page.locator("#needs-you li", has_text="crashed").count() == 0  # its process exited: waiting, not crashed
    waiting.locator("a").click()
    board = page.locator(".board.pipeline")
    assert "# Plan" in board.locator(".plan-text").inner_text() and "fix add" in board.locator(".plan-text").inner_text()
    assert "waiting: approve or reject" in board.locator(".gate").inner_text()
    assert board.locator(".group", has_text="parallel").count() == 1  # backend and frontend at once
    assert "findings → " in board.locator("article[data-stage=security-reviewer]").inner_text()
    screenshot(page, "pipeline-gate.png")
    page.fill("#approve-note", "go ahead")
    page.click("form.approve button")
    page.locator(".said", has_text=f"approved run {rid}").wait_for()
    wait_for(lambda: _run(db, rid)["status"] != "running", "the approved pipeline to end", timeout=120)
    done = _run(db, rid)
    assert done["status"] == "done", done
    result = done["result"]
    assert result["approvals"][0] == {"approved": True, "note": "go ahead", "after": "architect"}
    assert result["review"]["ended"] == "clean"
    assert counts(gated["url"]).get("backend") == 2 and counts(gated["url"]).get("security-reviewer") == 1
    page.locator(".verdict .badge", has_text="done").wait_for()  # the page followed it to its end
    assert "round 1: clean" in page.locator(".board.pipeline").inner_text()
    assert page.locator("article[data-stage=backend] .badge").inner_text() == "merged"
    assert page.locator("article[data-stage=frontend] .flag").inner_text() == "outside the approved plan: ui.css"
    assert page.locator("article[data-stage=backend] .flag").count() == 0
    screenshot(page, "pipeline-done.png")


def test_reject_on_the_pipeline_page_ends_it_with_its_reason(gated: Any, page: Any) -> None:
    ui, rid, db = gated["ui"], gated["reject"], gated["db"]
    page.goto(f"{ui.url}runs/{rid}")
    assert "Plan B" in page.locator(".plan-text").inner_text()
    page.fill("#reject-reason", "not this way")
    page.click("form.reject button")  # it asks first; the fixture's page accepts
    page.locator(".said", has_text=f"rejected run {rid}: not this way").wait_for()
    wait_for(lambda: _run(db, rid)["status"] != "running", "the rejected pipeline to end", timeout=120)
    done = _run(db, rid)
    assert done["status"] == "rejected" and "rejected at architect: not this way" in done["result"]["reason"], done
    assert "backend2" not in counts(gated["url"])  # nothing ran past the gate
    page.locator(".gate", has_text="rejected: not this way").wait_for()


def test_a_review_page_shows_its_rounds_and_its_diff(gated: Any, page: Any) -> None:
    page.goto(f"{gated['ui'].url}runs/{gated['review']}")
    board = page.locator(".board.review")
    first, second = board.locator("article[data-round='1']"), board.locator("article[data-round='2']")
    assert "round 1: changes_needed" in first.inner_text() and "round 2: clean" in second.inner_text()
    sign = first.locator("tr", has_text="add drops b").inner_text()
    assert all(x in sign for x in ("P0", "0.95", "calc.py:1-2", "blocking", "fixed in round 2")), sign
    assert "advisory" in first.locator("tr", has_text="name the sum").inner_text()
    assert "fix by implementer" in first.inner_text()
    assert "clean" in board.locator(".verdict").inner_text()
    assert "scripted:gpt-reviewer" in board.locator("table.roles").inner_text()
    assert "+    return a + b" in board.locator(".branch-diff").inner_text()
    screenshot(page, "review.png")
