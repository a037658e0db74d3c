"""Shared set-up for the gateway tests: a project folder, a run store and the gateway on loopback."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic

from flotilla.gateway.app import Gateway
from flotilla.gateway.server import build_gateway, running
from flotilla.gateway.state import project_config
from flotilla.store import SQLiteStore

FIXTURE = Path(__file__).parent / "fixtures" / "claude-code-2.1.328-request.json"  # captured from Claude Code 2.1.328


def providers_toml(url: str) -> str:
    return (f'[providers.fakeoai]\nkind = "openai"\nbase_url = "{url}/v1"\n\n'
            f'[providers.fakeanth]\nkind = "anthropic"\nbase_url = "{url}"\n\n')


@dataclass
class Running:
    url: str
    app: Gateway
    store: SQLiteStore
    root: Path
    secrets: dict[str, str]
    """The secret of each key created before the gateway started, by name."""

    def client(self, key: str = "unused", **kw: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, **kw)

    def async_client(self, key: str = "unused") -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0)

    def rows(self, at_least: int = 1) -> list[dict[str, Any]]:
        """The request log, waiting (briefly) for ``at_least`` rows: a row is written just after the
        response's last byte, so the client can be a moment ahead of it."""
        deadline = time.monotonic() + 5
        while True:
            rows = [dict(r) for r in self.store.execute("SELECT * FROM gateway_requests ORDER BY id")]
            if len(rows) >= at_least or time.monotonic() > deadline:
                return rows
            time.sleep(0.01)


@contextmanager
def gateway(root: Path, upstream_url: str, gateway_toml: str = "", *, environ: dict[str, str] | None = None,
            providers: str = "", host: str = "127.0.0.1", keys: tuple[str, ...] | dict[str, dict[str, Any]] = (),
            extra: str = ""):
    """The gateway serving ``root``'s flotilla.toml (fake providers, extra ``providers`` tables,
    ``gateway_toml`` as the ``[gateway]`` section, then ``extra`` tables) on a free port of ``host``,
    with ``keys`` created before it starts (names, or names mapped to ``KeyStore.create`` options)."""
    (root / "flotilla.toml").write_text(providers_toml(upstream_url) + providers + "\n[gateway]\n" + gateway_toml
                                        + "\n" + extra)
    env = dict(environ or {})
    store = SQLiteStore(root / "flotilla.db")
    app = build_gateway(store, live=project_config(root, environ=env), environ=env)
    options = keys if isinstance(keys, dict) else dict.fromkeys(keys, {})
    secrets = {name: app.keys.create(name, **kw) for name, kw in options.items()}
    with running(app, host=host) as url:
        yield Running(url.replace("0.0.0.0", "127.0.0.1"), app, store, root, secrets)
    store.close()


def fixture_request() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())
