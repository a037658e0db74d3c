"""The dashboard's actions over loopback HTTP (no browser needed): each calls the Session function its
command calls, says what it did or why not, and the runs list and "needs you" strip follow the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from flotilla.events import ModelCalled
from flotilla.store import SQLiteStore
from test_race_support import branches, make_repo, sh
from web_support import serving


def _post(url: str, path: str, **form: str) -> httpx.Response:
    return httpx.post(f"{url}{path.lstrip('/')}", data=form, headers={"origin": url.rstrip("/")})


def _said(response: httpx.Response) -> str:
    from urllib.parse import parse_qs, urlsplit

    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["said"][0]


def test_actions_say_what_they_did_and_why_not(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    store = SQLiteStore(tmp_path / "store.db")
    live = store.create_run("agent", "a live run")  # this process: alive
    waiting = store.create_run("fanout", "a fan-out waiting", meta={"state": "awaiting approval"})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    crashed = store.create_run("race", "a crashed race")
    gated = store.create_run("pipeline", "a pipeline at its gate", meta={"state": "awaiting approval", "gate": "plan"})
    store.execute("UPDATE runs SET pid = ? WHERE id IN (?, ?)", (int(dead.stdout), crashed, gated))
    held = store.create_run("pipeline", "a pipeline waiting in a live process", meta={"state": "awaiting approval",
                                                                                      "gate": "plan"})
    done = store.create_run("agent", "a finished run")
    store.emit(ModelCalled(run_id=done, provider="anthropic", model="claude-x<b>", role="executor", input_tokens=10,
                           output_tokens=5, cost_usd=0.25))
    store.finish_run(done, "done")
    evaluation = store.create_run("eval", "eval tasks: a vs b")
    summary = [{"config": c, "tasks": 2, "pass@1": p, "any@N": 2, "selected@N": sel, "selector_loss": 2 - sel,
                "pass@1_rate": p / 2, "any@N_rate": 1.0, "selected@N_rate": sel / 2, "selector_loss_rate": (2 - sel) / 2,
                "cost_per_task": 0.01, "seconds_per_task": 3.0} for c, p, sel in (("a<i>", 1, 1), ("b", 1, 2))]
    store.finish_run(evaluation, "done", result={"summary": summary, "results": [
        {"config": "b", "task": "t1", "status": "done", "first_solved": True, "any_solved": True,
         "selected_solved": True, "attempts": [{}, {}], "cost_usd": 0.02, "seconds": 3.0}]})
    for i in range(55):  # more than a page of finished asks, older than the runs above
        old = store.create_run("ask", f"old ask {i:02d}")
        store.execute("UPDATE runs SET status = 'done', created_at = ? WHERE id = ?", (1_000_000 + i, old))
    for ui in serving(tmp_path / "store.db", repo):
        first, second = httpx.get(ui.url).text, httpx.get(f"{ui.url}?page=1").text
        # 7 newer runs and asks 54..12 fill the first page of 50; 11..00 are on the second
        assert "older →" in first and "old ask 54" in first and "old ask 12" in first and "old ask 11" not in first
        assert "← newer" in second and "old ask 11" in second and "older →" not in second
        asks = httpx.get(f"{ui.url}?kind=ask&status=done").text
        assert "a finished run" not in asks and "a live run" not in asks and "old ask 54" in asks
        assert "no runs match these filters" in httpx.get(f"{ui.url}?kind=race&status=limited").text
        listing = httpx.get(ui.url).text
        assert "waits for your approval" in listing and "crashed: resume it" in listing
        needs = listing.split('id="needs-you"')[1].split("</section>")[0]
        assert f"/runs/{crashed}" in needs
        # a pipeline whose process exited at its gate waits (durably) for an answer: not crashed
        assert needs.count(f"/runs/{gated}") == 1 and "waiting: approve or reject" in needs
        assert "not done: a rejection needs a reason" in _said(_post(ui.url, f"/runs/{gated}/reject", reason=" "))
        assert "is not waiting for approval" in _said(_post(ui.url, f"/runs/{done}/approve", note="ok"))
        assert _said(_post(ui.url, f"/runs/{held}/approve", note="ok")) == \
            f"approved run {held} (it goes on in the process running it)"
        assert store.first_signal(f"{held}:approve:plan") == {"approved": True, "note": "ok"}
        again = _said(_post(ui.url, f"/runs/{held}/reject", reason="no"))  # a second answer: the first counts
        assert again.startswith(f"run {held} was approved already") and store.first_signal(f"{held}:approve:plan")["approved"]

        assert _said(_post(ui.url, f"/runs/{live}/stop")) == f"asked run {live} to stop"
        assert store.take_steering(live) == [{"message": "", "read_only": False, "stop": True}]
        assert "sent to run" in _said(_post(ui.url, f"/runs/{live}/steer", message="use the stdlib", read_only="1"))
        assert store.take_steering(live) == [{"message": "use the stdlib", "read_only": True, "stop": False}]
        assert "not done: give a message" in _said(_post(ui.url, f"/runs/{live}/steer", message=" "))
        assert "is not running" in _said(_post(ui.url, f"/runs/{done}/stop"))

        assert _said(_post(ui.url, f"/runs/{waiting}/signal", topic="approve", value="no")).startswith("rejected")
        assert store.first_signal(f"{waiting}:approve") is False  # the pipeline hook: Session.signal

        assert "nothing to resume" in _said(_post(ui.url, f"/runs/{done}/resume"))
        assert "still running" in _said(_post(ui.url, f"/runs/{live}/resume"))
        assert "not a race" in _said(_post(ui.url, f"/runs/{done}/merge"))

        sh(repo, "git", "branch", f"flotilla/{crashed}/a1")  # what the crashed race left behind
        gc = httpx.post(f"{ui.url}gc", headers={"origin": ui.url.rstrip("/")})
        assert _said(gc) == f"removed branch flotilla/{crashed}/a1"
        assert store.get_run(crashed)["status"] == "failed" and f"flotilla/{crashed}/a1" not in branches(repo)
        assert "nothing to collect" in _said(httpx.post(f"{ui.url}gc", headers={"origin": ui.url.rstrip("/")}))

        page = httpx.get(f"{ui.url}runs/nosuchrun")
        assert page.status_code == 400 and "no run &#x27;nosuchrun&#x27;" in page.text
        shown = httpx.get(f"{ui.url}runs/{evaluation}").text
        assert "a&lt;i&gt;" in shown and "2/2 (100%)" in shown and "selector loss" in shown and "t1" in shown
        usage = httpx.get(f"{ui.url}usage").text
        assert "cost by model" in usage and "anthropic:claude-x&lt;b&gt;" in usage and "$0.2500" in usage
        assert os.path.exists(store.path)
