"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flotilla.testing.fake_provider import FakeProvider, FakeProviderHost


@pytest.fixture(autouse=True)
def claude_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Every test gets an empty user Claude Code folder ($CLAUDE_CONFIG_DIR), never this machine's ~/.claude."""
    folder = tmp_path_factory.mktemp("claude-home")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(folder))
    yield folder


@pytest.fixture(scope="session")
def fake_provider_host() -> Iterator[FakeProviderHost]:
    """One loopback server for the whole session; each test's providers are mounted on it."""
    with FakeProviderHost() as host:
        yield host


@pytest.fixture
def fake_provider(fake_provider_host: FakeProviderHost) -> Iterator[Callable[..., FakeProvider]]:
    """A factory: ``fake_provider(script, api_key=None)`` gives a fresh FakeProvider over loopback.

    Use ``fp.url`` as the Anthropic base URL and ``fp.url + "/v1"`` as the
    OpenAI one; ``fp.count(model)`` and ``fp.received`` show what arrived. Each
    provider has its own script and log, and is removed when the test ends.
    """
    providers: list[FakeProvider] = []

    def start(script: dict[str, Any] | None = None, **options: Any) -> FakeProvider:
        provider = fake_provider_host.provider(script, **options)
        providers.append(provider)
        return provider

    yield start
    for provider in providers:
        provider.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one per module of the dashboard's browser tests; skips with the
    reason when it or Playwright is missing. Not one per session: while Playwright's sync API is open, the
    thread counts as running an event loop, and every later test's ``asyncio.run`` would refuse to start."""
    from web_support import launch, needs_browser

    sync_api = needs_browser()
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and tab; confirmations (destructive actions ask first) are accepted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.on("dialog", lambda dialog: dialog.accept())
    yield tab
    context.close()
