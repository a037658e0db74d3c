"""Who may use the dashboard, as an ASGI middleware in front of every route.

- Bound to loopback (the default), the page is open to this machine's browsers, and only under a
  loopback ``Host`` (a page of another site that rebinds its name to 127.0.0.1 is refused).
- Bound to any other address, every request needs the token printed at start: ``?token=`` once (it
  becomes an HttpOnly cookie), or ``Authorization: Bearer``. Only the token's SHA-256 is kept; a
  non-loopback app made without one is refused before it serves anything.
- Every POST must come from the dashboard's own pages: its ``Origin`` is this server (or it carries
  the token as a bearer header, for scripts). A form on another site cannot act.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ..errors import UserError

COOKIE = "flotilla_ui"


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> tuple[str, str]:
    """A fresh token and its hash (the hash is what the server keeps)."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Guard:
    """The middleware: the token (off loopback), the ``Host`` (on loopback) and the ``Origin`` of POSTs."""

    def __init__(self, app: Callable, *, host: str, token_sha256: str | None) -> None:
        self.app, self.loopback, self.token_sha256 = app, is_loopback(host), token_sha256
        if not self.loopback and not token_sha256:
            raise UserError(f"the dashboard is bound to {host}, which is not loopback: it needs a token "
                            "(`flotilla ui --host` makes one and prints it); bind 127.0.0.1 to go without")

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.loopback and not is_loopback(urlsplit(f"//{host}").hostname or ""):
            return await _refuse(send, 421, f"this dashboard answers to a loopback address, not {host!r}")
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not self.loopback:
            query = parse_qs(scope.get("query_string", b"").decode())
            given = (query.get("token") or [""])[0]
            if given and self._ok(given):  # the printed link: keep it as a cookie, drop it from the address
                rest = urlencode({k: v[0] for k, v in query.items() if k != "token"})
                return await _redirect(send, scope["path"] + (f"?{rest}" if rest else ""),
                                       cookie=f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/")
            cookie = SimpleCookie(headers.get("cookie", ""))
            held = cookie[COOKIE].value if COOKIE in cookie else ""
            if not (self._ok(held) or self._ok(bearer)):
                return await _refuse(send, 401, "this dashboard needs its token: open the address "
                                     "`flotilla ui` printed when it started (it ends in ?token=…)")
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get("origin", "")
            own = {f"http://{host}", f"https://{host}"}
            if origin not in own and not (bearer and self._ok(bearer)):
                return await _refuse(send, 403, f"refused: a {scope['method']} from "
                                     f"{origin or 'a page that sent no Origin'}, not from this dashboard")
        return await self.app(scope, receive, send)

    def _ok(self, token: str) -> bool:
        return bool(token and self.token_sha256 and hmac.compare_digest(token_hash(token), self.token_sha256))


async def _refuse(send: Callable, status: int, message: str) -> None:
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Callable, location: str, *, cookie: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
