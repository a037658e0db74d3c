"""Starting the gateway: the app wired to the store and configuration, served by uvicorn."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .app import Gateway
from .auth import MASTER_ENV, is_loopback
from .keys import KeyStore
from .state import LiveConfig, project_config

__all__ = ["MASTER_ENV", "build_gateway", "check_bind", "is_loopback", "running", "serve", "startup_warnings"]
log = logging.getLogger("flotilla.gateway")


def build_gateway(store: Any, *, live: LiveConfig | None = None, cwd: Path | None = None,
                  environ: dict[str, str] | None = None) -> Gateway:
    """The ASGI app over ``store``, with the master key from ``FLOTILLA_GATEWAY_MASTER_KEY``."""
    env = os.environ if environ is None else environ
    keys = KeyStore(store, master_key=env.get(MASTER_ENV) or None)
    keys.clear_reservations()
    live = live or project_config(cwd, environ=environ)
    live.current.warm()
    gateway = Gateway(live, keys)
    for warning in startup_warnings(gateway):
        log.warning("gateway: %s", warning)
    return gateway


def startup_warnings(gateway: Gateway) -> list[str]:
    """What an operator should know before Claude Code meets the gateway: model families with no route."""
    missing = gateway.live.current.unrouted_families()
    if not missing:
        return []
    return [f"Claude Code's {', '.join(missing)} models have no route: no rule takes them and their provider "
            "cannot be reached, so such requests get 404. Set [gateway] default = \"provider:model\" in "
            "flotilla.toml, or add a rule (background for haiku, aliases, …)"]


def check_bind(host: str, gateway: Gateway) -> None:
    """Decides the gateway's auth mode for ``host``; refuses a non-loopback address no key protects
    (``UserError``), and ``auth = "open"`` on one."""
    gateway.bind(host)


def serve(gateway: Gateway, host: str, port: int, *, log_level: str = "warning") -> None:
    """Runs the gateway until interrupted (uvloop and httptools when installed)."""
    import uvicorn

    check_bind(host, gateway)
    # Everything loaded so far (the SDKs, pydantic's schemas, the catalog) lives as long as the
    # process: frozen out of the collector, it is no longer walked by every full collection, which
    # under load came every ~2,000 requests and cost the event loop tens of milliseconds each.
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(gateway, host=host, port=port, log_level=log_level, access_log=False,
                    http="auto", loop="auto", lifespan="on", timeout_keep_alive=30)
    finally:
        gateway.keys.flush()


@contextmanager
def running(gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serves the gateway on a background thread for the duration of a ``with``; yields its base URL."""
    import socket
    import threading

    import uvicorn

    check_bind(host, gateway)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(gateway, log_level="warning", access_log=False, lifespan="off", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    import time

    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        gateway.keys.flush()
