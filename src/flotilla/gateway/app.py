"""The gateway as a bare ASGI application: Anthropic Messages in, any backend out.

Kept free of a web framework on purpose: the request path is a handful of
awaits, and every microsecond here is added to every call a client makes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from ..errors import ProviderError
from ..messages import MessagesRequest, estimate_tokens
from . import budget
from .auth import Auth
from .errors import GatewayError, from_exception
from .front import door_for, open_door
from .keys import UNAUTHENTICATED, Key, KeyStore
from .listing import model_entry, models_page
from .metrics import Metrics
from .proxy import Call, serve_plain, serve_stream
from .relay import Relay
from .routing import Route
from .state import LiveConfig, Snapshot
from .validate import check_request, parse_request

log = logging.getLogger("flotilla.gateway")
_JSON = (b"content-type", b"application/json")
_PASSED_ON = ("anthropic-beta", "anthropic-version")


class Gateway:
    """``Gateway(live, keys)`` is the ASGI app ``flotilla gateway`` serves.

    Its auth mode is decided by ``bind(host)`` (``serve`` and ``running`` call it), see ``auth``.
    """

    def __init__(self, live: LiveConfig, keys: KeyStore, metrics: Metrics | None = None) -> None:
        self.live = live
        self.keys = keys
        self.metrics = metrics or Metrics()
        config = live.current.config
        self.auth = Auth(keys, config.auth, config.host)

    def bind(self, host: str) -> None:
        """Decides the auth mode for ``host``; refuses (``UserError``) what cannot be served safely."""
        self.auth.bind(host)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        t0 = time.perf_counter()
        request_id = "req_" + os.urandom(12).hex()
        method, path = scope["method"], scope["path"]  # ASGI gives the path without its query
        who = [UNAUTHENTICATED]  # the key name, once verified, for the row of a refused request
        if path[:9] != "/v1/messa" and (door := door_for(method, path, scope.get("query_string", b""))):
            scope, receive, send = open_door(door, scope, receive, send)  # then served as /v1/messages
            path = scope["path"]
        try:
            if path == "/v1/messages" and method == "POST":
                await self._messages(scope, receive, send, request_id, t0, who)
            elif path == "/v1/messages/count_tokens" and method == "POST":
                await self._count_tokens(scope, receive, send, request_id)
            elif path == "/v1/models" and method == "GET":
                self.auth.authenticate(_headers(scope))
                page = models_page(self.live.get(), scope.get("query_string", b""))
                await _reply(send, 200, json.dumps(page).encode(), request_id)
            elif path.startswith("/v1/models/") and method == "GET":
                self.auth.authenticate(_headers(scope))
                entry = model_entry(self.live.get(), path[len("/v1/models/"):])
                await _reply(send, 200, json.dumps(entry).encode(), request_id)
            elif path in ("/", "/health") and method in ("GET", "HEAD"):
                body = b"" if method == "HEAD" else json.dumps(
                    {"status": "ok", "service": "flotilla gateway"}).encode()
                await _reply(send, 200, body, request_id)
            elif path == "/metrics" and method == "GET":
                if self.auth.metrics_need_key:  # key names and per-key spend: not for anyone on the network
                    self.auth.authenticate(_headers(scope))
                await _reply(send, 200, self.metrics.render().encode(), request_id,
                             content_type=b"text/plain; version=0.0.4")
            else:
                raise GatewayError(404, f"no endpoint {method} {path}; this gateway serves POST /v1/messages, "
                                        "POST /v1/messages/count_tokens, POST /v1/chat/completions, POST /v1/responses, POST "
                                        "/v1beta/models/MODEL:generateContent (and :streamGenerateContent), "
                                        "GET /v1/models[/ID], /health and /metrics",
                                   "not_found_error")
        except Exception as exc:
            if not isinstance(exc, GatewayError):
                log.exception("gateway request %s failed", request_id)
            error = from_exception(exc, self.live.current.secrets)
            self.metrics.errors[(error.kind,)] += 1
            if path == "/v1/messages" and not getattr(exc, "logged", False):
                self._log_refused(request_id, error, t0, who[0])
            await _error(send, error, request_id, t0)

    # -- POST /v1/messages ------------------------------------------------

    async def _messages(self, scope: dict[str, Any], receive: Any, send: Any, request_id: str,
                        t0: float, who: list[str]) -> None:
        snap = self.live.get()
        headers = _headers(scope)
        body = await _read_body(receive, headers, snap.config.max_body_mb)
        key = self.auth.authenticate(headers)
        who[0] = key.name
        data = _load_json(body)
        check_request(data)
        request = parse_request(data)
        route = snap.router.route(request, headers)
        chain = tuple(m for m in route.chain if key.allows(m))
        if not chain:
            raise GatewayError(403, f"key {key.name!r} may not use {', '.join(route.chain)}; "
                                    f"it is limited to {', '.join(key.models)}", "permission_error")
        _reachable(snap, route, request)
        bound = 0.0
        if key.budget_usd is not None:
            chain = budget.priced_chain(snap.catalog, key, chain)
            bound = budget.bound_usd(snap.catalog, chain, request, len(body))
            budget.admit(self.keys, key, bound)
        relay = Relay(message_id="msg_" + request_id[4:], body=data,
                      headers={h: headers[h] for h in _PASSED_ON if h in headers} or None)
        call = Call(request_id=request_id, rule=route.rule, t0=t0, stream=bool(request.stream), relay=relay)
        charged: list[float] = []

        def settle() -> None:
            if not charged:
                charged.append(snap.catalog.cost(call.model, call.usage) if call.model else 0.0)
                self.keys.settle(key, bound, charged[0])

        call.settle = settle
        try:
            if request.stream:
                await serve_stream(call, snap, chain, request, send, self.metrics, receive)
            else:
                await serve_plain(call, snap, chain, request, send, self.metrics)
        except Exception as exc:
            if not isinstance(exc, GatewayError):
                log.exception("gateway request %s failed", request_id)
            error = from_exception(exc, snap.secrets)
            call.status, call.error = error.status, error.kind
            error.logged = True  # type: ignore[attr-defined]  # by the finally below
            error.route = f"{call.rule}; model={call.model}"  # type: ignore[attr-defined]
            raise error from None
        finally:
            settle()
            del call.settle  # the closure refers to the call: no cycle left for the collector
            self._account(call, key, charged[0])

    def _account(self, call: Call, key: Key, cost: float) -> None:
        latency = time.perf_counter() - call.t0
        u = call.usage
        tokens = {"input": u.input_tokens, "output": u.output_tokens,
                  "cache_read": u.cache_read_input_tokens, "cache_write": u.cache_creation_input_tokens}
        self.metrics.record(key=key.name, model=call.model or "-", route=call.rule, status=call.status,
                            latency_s=latency, ttft_s=call.ttft, tokens=tokens, cost=cost, error=call.error)
        if not self.live.current.config.log_requests:
            return
        try:
            self.keys.log({
                "request_id": call.request_id, "key_name": key.name, "route": call.rule, "model": call.model,
                "status": call.status, "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                "cache_read_tokens": u.cache_read_input_tokens,
                "cache_write_tokens": u.cache_creation_input_tokens, "cost_usd": cost,
                "latency_ms": latency * 1000, "ttft_ms": call.ttft * 1000 if call.ttft is not None else None,
                "overhead_ms": call.overhead_ms, "stream": int(call.stream), "error": call.error,
                "estimated": int(call.estimated), "at": time.time()})
        except Exception:  # the log must never fail a request that was served
            log.exception("could not write the gateway request log")

    def _log_refused(self, request_id: str, error: GatewayError, t0: float, key_name: str) -> None:
        """A request refused before any backend was called (bad body, key, budget, route) still gets its row,
        under its key's name (``(unauthenticated)`` when no key was verified)."""
        if not self.live.current.config.log_requests:
            return
        try:
            self.keys.log({"request_id": request_id, "key_name": key_name, "route": "none",
                           "status": error.status, "error": error.kind, "estimated": 0,
                           "latency_ms": (time.perf_counter() - t0) * 1000, "at": time.time()})
        except Exception:
            log.exception("could not write the gateway request log")

    # -- POST /v1/messages/count_tokens -----------------------------------

    async def _count_tokens(self, scope: dict[str, Any], receive: Any, send: Any, request_id: str) -> None:
        snap = self.live.get()
        headers = _headers(scope)
        body = await _read_body(receive, headers, snap.config.max_body_mb)
        self.auth.authenticate(headers)
        data = _load_json(body)
        check_request(data, counting=True)
        request = parse_request({**data, "max_tokens": 1})  # count_tokens requests carry none
        route = snap.router.route(request, headers)
        _reachable(snap, route, request)  # the same 404 as /v1/messages for a model with no route
        name = route.chain[0]
        backend = snap.model(name)  # an unknown provider: the same 404 as /v1/messages gives
        extra: list[tuple[bytes, bytes]] = []
        if snap.kind(name) == "anthropic":
            passed_on = {h: headers[h] for h in _PASSED_ON if h in headers}
            try:
                count = await backend.count_tokens(request, headers=passed_on or None)
            except ProviderError as exc:
                raise from_exception(exc, snap.secrets) from None
            result: dict[str, Any] = {"input_tokens": count}
        else:
            result = {"input_tokens": estimate_tokens(request), "estimated": True}
            extra.append((b"x-flotilla-token-count", b"local-estimate"))
        extra.append((b"x-flotilla-route", f"{route.rule}; model={name}".encode()))
        await _reply(send, 200, json.dumps(result).encode(), request_id, extra=extra)


def _reachable(snap: Snapshot, route: Route, request: MessagesRequest) -> None:
    """A request no rule took, for a model the gateway cannot reach, is the client's 404 naming the fix;
    a retryable 500 would have Claude Code retry it in silence."""
    if route.rule != "model":
        return
    try:
        snap.model(route.chain[0])
    except GatewayError as exc:
        raise GatewayError(
            404, f"no route for model {request.model!r}: no [gateway] rule matched it, so it was taken as "
                 f"{route.chain[0]}, and {exc.message}. Fix: set [gateway] default = \"provider:model\" in "
                 "flotilla.toml, or add a rule that takes it (aliases, background for haiku-family models, …)",
            "not_found_error") from None


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_body(receive: Any, headers: dict[str, str], max_mb: float) -> bytes:
    limit = int(max_mb * 1024 * 1024)
    too_big = GatewayError(413, f"the request body is over the gateway's limit of {max_mb:g} MB",
                           "request_too_large")
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the request body must be a JSON object")
    return data


async def _reply(send: Any, status: int, body: bytes, request_id: str, *, content_type: bytes = _JSON[1],
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"request-id", request_id.encode()),
               (b"content-length", str(len(body)).encode())]
    if extra:
        headers += extra
    if not any(k == b"x-flotilla-route" for k, _ in headers):
        headers.append((b"x-flotilla-route", b"none"))
    headers.append((b"x-flotilla-overhead-ms", b"0"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Any, exc: GatewayError, request_id: str, t0: float) -> None:
    body = exc.body(request_id)
    overhead = f"{(time.perf_counter() - t0) * 1000:.3f}".encode()
    headers = [_JSON, (b"request-id", request_id.encode()), (b"content-length", str(len(body)).encode()),
               (b"x-flotilla-route", getattr(exc, "route", "none").encode()),
               (b"x-flotilla-overhead-ms", overhead)]
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(int(exc.retry_after + 0.999)).encode()))
    try:
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except (RuntimeError, OSError):
        pass  # the response had already started (or the client left): nothing more to say


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

