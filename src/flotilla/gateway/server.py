"""Starting the gateway: the app wired to the store and configuration, served by uvicorn."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import UserError
from .app import Gateway
from .keys import KeyStore
from .state import LiveConfig, project_config

MASTER_ENV = "FLOTILLA_GATEWAY_MASTER_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_gateway(store: Any, *, live: LiveConfig | None = None, cwd: Path | None = None,
                  environ: dict[str, str] | None = None) -> Gateway:
    """The ASGI app over ``store``, with the master key from ``FLOTILLA_GATEWAY_MASTER_KEY``."""
    env = os.environ if environ is None else environ
    keys = KeyStore(store, master_key=env.get(MASTER_ENV) or None)
    keys.clear_reservations()
    live = live or project_config(cwd, environ=environ)
    live.current.warm()
    return Gateway(live, keys)


def check_bind(host: str, gateway: Gateway) -> None:
    """Refuses a non-loopback address when no key protects the gateway."""
    if not is_loopback(host) and not gateway.keys.any_configured():
        raise UserError(
            f"refusing to listen on {host}: with no key configured anyone who can reach that address "
            f"could spend your provider credits. Set {MASTER_ENV} or run `flotilla keys create --name NAME`, "
            "or listen on 127.0.0.1")


def serve(gateway: Gateway, host: str, port: int, *, log_level: str = "warning") -> None:
    """Runs the gateway until interrupted (uvloop and httptools when installed)."""
    import uvicorn

    check_bind(host, gateway)
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
