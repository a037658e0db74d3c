"""The dashboard's guards, in a real browser where a browser is what they guard against: a transcript's
``<script>`` is text, keys never show, a form on another site cannot act, a non-loopback bind needs its
token, and a loopback one answers only to loopback names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from flotilla.errors import UserError
from flotilla.events import MessageAdded
from flotilla.session import Session
from flotilla.store import SQLiteStore
from flotilla.web import create_app
from web_support import needs_browser, serving

needs_browser()  # skips this module, saying why, without Chromium or Playwright
EVIL = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
SECRET = "s3cret-value-of-the-provider-key"


def _store_with_a_run(tmp_path: Path) -> tuple[SQLiteStore, str]:
    store = SQLiteStore(tmp_path / "store.db")
    run_id = store.create_run("agent", f"title {EVIL}")  # running, in this (live) process
    store.emit(MessageAdded(run_id=run_id, message={"role": "user", "content": f"look: {EVIL}"}))
    store.emit(MessageAdded(run_id=run_id, message={"role": "assistant", "content": [
        {"type": "text", "text": f"the key is {SECRET} and sk-ant-api03-abcdefghijklmnopqrstuvwxyz"}]}))
    return store, run_id


def test_a_script_in_a_transcript_is_inert_and_keys_never_show(tmp_path: Path, page: Any) -> None:
    store, run_id = _store_with_a_run(tmp_path)
    for ui in serving(tmp_path / "store.db", tmp_path, extra_env={"ANTHROPIC_API_KEY": SECRET}):
        page.goto(ui.url)
        assert EVIL in page.locator("table.runs").inner_text()  # the title, as text
        page.goto(f"{ui.url}runs/{run_id}")
        page.wait_for_selector("#live.on")
        store.emit(MessageAdded(run_id=run_id, message={"role": "assistant", "content": f"live {EVIL}"}))
        page.locator(".msg.assistant", has_text="live <script>").wait_for()  # appended by the stream, as text
        text = page.locator("#transcript").inner_text()
        assert f"look: {EVIL}" in text and f"live {EVIL}" in text
        assert page.evaluate("typeof window.pwned") == "undefined"
        assert page.locator("#transcript script, #transcript img").count() == 0
        html = page.content()
        assert SECRET not in html and "abcdefghijklmnopqrstuvwxyz" not in html and "sk-ant-•••" in html


def test_a_form_on_another_site_cannot_act(tmp_path: Path, page: Any) -> None:
    store, run_id = _store_with_a_run(tmp_path)
    for ui in serving(tmp_path / "store.db", tmp_path):
        page.set_content(f'<form method="post" action="{ui.url}runs/{run_id}/stop"><button>go</button></form>')
        with page.expect_navigation():
            page.click("button")
        assert "refused" in page.inner_text("body")
        assert store.take_steering(run_id) == []  # nothing reached the run
        rebound = httpx.get(ui.url, headers={"host": "attacker.example:80"})  # a rebound DNS name, on loopback
        assert rebound.status_code == 421


def test_a_non_loopback_bind_needs_its_token(tmp_path: Path, page: Any) -> None:
    store, run_id = _store_with_a_run(tmp_path)
    with pytest.raises(UserError, match="needs a token"):
        create_app(Session(tmp_path, durable=False, store=store), host="0.0.0.0")
    for ui in serving(tmp_path / "store.db", tmp_path, "--host", "0.0.0.0"):
        assert "?token=" in ui.link
        here = ui.url.replace("0.0.0.0", "127.0.0.1")
        refused = page.goto(here)
        assert refused.status == 401 and "needs its token" in page.inner_text("body")
        assert page.goto(f"{here}?token=wrong").status == 401
        assert httpx.get(f"{here}runs/{run_id}").status_code == 401
        page.goto(ui.link.replace("0.0.0.0", "127.0.0.1"))
        assert page.url == here  # the token became a cookie and left the address
        page.wait_for_selector("#live.on")  # the event stream is let in with the cookie
        assert run_id in page.locator("table.runs").inner_text()
        token = ui.link.split("token=")[1]
        steered = httpx.post(f"{here}runs/{run_id}/steer", data={"message": "hi"},
                             headers={"authorization": f"Bearer {token}"})
        assert steered.status_code == 303 and store.take_steering(run_id)[0]["message"] == "hi"
