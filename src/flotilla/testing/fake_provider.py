"""A fake model provider: an HTTP server speaking the Anthropic and OpenAI wire formats.

The official SDKs talk to it over loopback exactly as they would to the real
services: ``POST /v1/messages`` (plain and SSE, ``count_tokens``) and
``POST /v1/chat/completions`` (plain and ``data:`` chunks), ``POST /v1/responses`` and Gemini's
``POST /v1beta/models/M:generateContent`` / ``:streamGenerateContent`` (translated to Messages by
the gateway's front doors, so recorded in ``received`` as ``/v1/messages``), and ``GET /v1/models``
in either format. Query strings (``?beta=true``) are accepted. It answers from a
script keyed by model name (see ``_fake_steps`` for the step keys) and injects
faults on request. ::

    with FakeProvider({"claude-x": [{"text": "hi"}, {"status": 529}]}) as fp:
        client = anthropic.Anthropic(base_url=fp.url, api_key="k")
        ...
        assert fp.count("claude-x") == 2

A model's steps are used in order, one per request; a single dict instead of a
list answers every request; a model with no script gets 404 ``not_found_error``.
``fp.received`` keeps every request (path, model, body, headers); ``api_key=``
makes any other key a 401. ``FakeProviderHost`` serves many fake providers from
one server (what the ``fake_provider`` test fixture uses), and
``flotilla fake-provider --port N --script FILE`` serves a script file (JSON or
YAML) from the command line.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._fake_app import FakeProviderApp, Received, Script, _send

__all__ = ["FakeProvider", "FakeProviderApp", "FakeProviderHost", "Received", "load_script"]


class _Dispatch:
    """Routes ``/PREFIX/…`` to the fake provider mounted there, so one server hosts many."""

    def __init__(self) -> None:
        self.apps: dict[str, FakeProviderApp] = {}

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        prefix = "/" + scope["path"].split("/")[1]
        app = self.apps.get(prefix)
        if app is None:
            body = json.dumps({"type": "error", "error": {"type": "not_found_error",
                                                          "message": f"no fake provider at {prefix}"}})
            return await _send(send, 404, body.encode())
        await app({**scope, "path": scope["path"][len(prefix):] or "/"}, receive, send)


class _Uvicorn:
    """uvicorn serving one ASGI app, on a background thread or in the foreground."""

    def __init__(self, app: Any, host: str, port: int, log_level: str) -> None:
        import uvicorn

        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=False,
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"fake-provider:{self.port}", daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the fake provider server failed to start")
            threading.Event().wait(0.002)

    def stop(self) -> None:
        self.server.should_exit = self.server.force_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)

    def run(self) -> None:
        self.server.run(sockets=[self.sock])


class FakeProvider:
    """The fake provider served by uvicorn on a background thread (ephemeral loopback port by default).

    ``url`` is the Anthropic base URL; OpenAI clients use ``url + "/v1"``.
    """

    def __init__(self, script: Script | None = None, *, api_key: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, log_level: str = "critical") -> None:
        self.app = FakeProviderApp(script, api_key=api_key)
        self.host, self.port, self.log_level = host, port, log_level
        self._server: _Uvicorn | None = None
        self._mounted: tuple[FakeProviderHost, str] | None = None

    @property
    def url(self) -> str:
        prefix = self._mounted[1] if self._mounted else ""
        return f"http://{self.host}:{self.port}{prefix}"

    @property
    def received(self) -> list[Received]:
        """Every request received, in order: path, model, body and headers."""
        return self.app.received

    def count(self, model: str | None = None) -> int:
        """Generation requests received (``count_tokens`` excluded), for one model or all."""
        return self.app.count(model)

    def add(self, model: str, steps: Any) -> None:
        """Appends steps for ``model``; a single dict (or callable) answers every request."""
        self.app.add(model, steps)

    def start(self) -> FakeProvider:
        """Starts serving on a background thread; returns when the port accepts connections."""
        if self._mounted is None and self._server is None:
            self._server = _Uvicorn(self.app, self.host, self.port, self.log_level)
            self.port = self._server.port
            self._server.start()
        return self

    def stop(self) -> None:
        if self._mounted is not None:
            host, prefix = self._mounted
            host.dispatch.apps.pop(prefix, None)
        if self._server is not None:
            self._server.stop()
            self._server = None

    def serve_forever(self) -> None:
        """Serves in the foreground until interrupted (the ``flotilla fake-provider`` command)."""
        server = _Uvicorn(self.app, self.host, self.port, self.log_level)
        self.port = server.port
        server.run()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class FakeProviderHost:
    """One server hosting many fake providers, each under its own URL prefix.

    Starting a server costs tens of milliseconds and stopping one a tick of
    uvicorn's loop; a test suite that wants a fresh provider per test mounts
    them on one host instead (the ``fake_provider`` fixture does).
    """

    def __init__(self, host: str = "127.0.0.1", log_level: str = "critical") -> None:
        self.dispatch = _Dispatch()
        self._server = _Uvicorn(self.dispatch, host, 0, log_level)
        self._next = itertools.count(1)

    def start(self) -> FakeProviderHost:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def provider(self, script: Script | None = None, *, api_key: str | None = None) -> FakeProvider:
        """A fresh fake provider mounted on this host (its ``stop()`` unmounts it)."""
        fp = FakeProvider(script, api_key=api_key, host=self._server.host, port=self._server.port)
        prefix = f"/fp{next(self._next)}"
        fp._mounted = (self, prefix)
        self.dispatch.apps[prefix] = fp.app
        return fp

    def __enter__(self) -> FakeProviderHost:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def load_script(path: str | Path) -> Script:
    """A script file: a mapping of model name to a list of steps (JSON, or YAML by extension)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a fake provider script maps model names to lists of steps")
    return data
