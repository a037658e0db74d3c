"""Who may call the gateway: its auth mode, decided when it binds, and the key check per request.

The mode comes from configuration (``[gateway] auth``) and the address, never from
whether key rows happen to exist at the moment a request arrives:

- ``keys``: every request needs a valid key; with none left (all revoked), every request
  gets 401 saying so. A non-loopback bind is always ``keys``.
- ``open``: nothing is asked for; refused on anything but loopback.
- ``auto`` (the default): ``keys`` when a master key is set or a key was ever created in
  this store (revoked ones count); otherwise open on loopback until the first key is
  created, and ``keys`` from then on, for good. Nothing turns a gateway back to open.

``/metrics`` (key names, per-key spend) needs a key on a non-loopback bind.
"""

from __future__ import annotations

import ipaddress
import time

from ..errors import UserError
from .errors import GatewayError
from .keys import ANONYMOUS, Key, KeyStore

MASTER_ENV = "FLOTILLA_GATEWAY_MASTER_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Auth:
    """The gateway's auth mode and the per-request check."""

    def __init__(self, keys: KeyStore, setting: str = "auto", host: str = "127.0.0.1") -> None:
        self.keys = keys
        self.setting = setting
        self.bind(host, strict=False)

    def bind(self, host: str, *, strict: bool = True) -> None:
        """Decides the mode for listening on ``host``; ``strict`` refuses what cannot be served safely."""
        self.host = host
        loopback = is_loopback(host)
        self.metrics_need_key = not loopback
        if self.setting == "open":
            if not loopback and strict:
                raise UserError(f"refusing to listen on {host} with [gateway] auth = \"open\": anyone who can "
                                "reach that address could spend your provider credits. Listen on 127.0.0.1, "
                                "or set auth = \"keys\" and create a key with `flotilla keys create --name NAME`")
            self.required = not loopback
        elif self.setting == "keys" or not loopback:
            self.required = True
        else:  # auto on loopback
            self.required = self.keys.has_master or self.keys.ever_created()
        self._checked = time.monotonic()
        if strict and not loopback and not self.keys.any_configured():
            raise UserError(
                f"refusing to listen on {host}: with no key configured anyone who can reach that address "
                f"could spend your provider credits. Set {MASTER_ENV} or run `flotilla keys create --name NAME`, "
                "or listen on 127.0.0.1")

    @property
    def mode(self) -> str:
        """What the gateway does now, in words (printed at start-up)."""
        if self.required:
            return "keys (every request needs a valid key)"
        if self.setting == "open":
            return "open (loopback, [gateway] auth = \"open\")"
        return "open on loopback until a key is created (`flotilla keys create`), then keys for good"

    def authenticate(self, headers: dict[str, str]) -> Key:
        """The key a request carries; ``ANONYMOUS`` while the gateway is open."""
        if not self.required:
            now = time.monotonic()
            if self.setting == "open" or now - self._checked <= 1.0:
                return ANONYMOUS
            self._checked = now  # a key created by `flotilla keys` in another process closes an auto gateway
            self.required = self.keys.ever_created()
            if not self.required:
                return ANONYMOUS
        secret = headers.get("x-api-key")
        if not secret:
            auth = headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                secret = auth[7:].strip()
        if not secret:
            raise GatewayError(401, "this gateway needs a key: send it as x-api-key or "
                                    "Authorization: Bearer (`flotilla keys create` makes one)",
                               "authentication_error")
        key = self.keys.verify(secret)
        if key is None:
            if not self.keys.any_configured():
                raise GatewayError(401, "this gateway needs a key and has none that are valid (every key was "
                                        "revoked); `flotilla keys create --name NAME` makes one",
                                   "authentication_error")
            raise GatewayError(401, "the key sent is unknown or revoked", "authentication_error")  # never echo it
        return key
