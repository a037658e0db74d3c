"""Serving the dashboard with uvicorn: bind, say where, serve until stopped, and end the live streams
first so that stopping never waits on an open page."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from .app import create_app
from .security import is_loopback, new_token


@dataclass
class Bound:
    """A dashboard bound to its socket, not serving yet: its address and, off loopback, its token."""

    url: str
    token: str | None
    server: Any
    sock: socket.socket

    @property
    def link(self) -> str:
        """The address to open (with the token, once, when there is one)."""
        return f"{self.url}?token={self.token}" if self.token else self.url

    def serve(self) -> None:
        self.server.run(sockets=[self.sock])


def bind(session: Any, *, host: str = "127.0.0.1", port: int = 8789) -> Bound:
    """Binds ``host:port`` (port 0: any free one). Off loopback a fresh token is made; only its hash
    stays in the server."""
    import uvicorn

    token, digest = (None, None) if is_loopback(host) else new_token()
    app = create_app(session, host=host, token_sha256=digest)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn serves: the printed address works at once
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    board = app.app.state.dashboard

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            board.stopping.set()  # the event streams end, so open pages do not hold the shutdown
            await super().shutdown(sockets)

    return Bound(f"http://{shown}:{sock.getsockname()[1]}/", token, Server(config), sock)
