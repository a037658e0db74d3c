"""Calling the backends for one request: the fallback chain, plain or streamed.

A chain moves on only before the first byte has gone to the client (on 429 too
where the route asks for it); once a stream has started, a failure becomes an SSE
``event: error`` and the stream ends. A stream that ends early (the client left,
the upstream was cut) is charged for what it produced, marked as estimated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProviderError
from ..messages import MessagesRequest
from ..messages import Usage as TokenUsage
from ..models.fallback import falls_back
from ..models.usage import close_stream
from .errors import GatewayError, from_exception
from .lean import encode_event
from .metrics import Metrics
from .relay import Relay, count_delta
from .state import Snapshot

log = logging.getLogger("flotilla.gateway")


@dataclass
class Call:
    """What one request did, filled in as it goes; logged when it ends."""

    request_id: str
    rule: str
    t0: float
    stream: bool
    model: str = ""
    status: int = 200
    error: str | None = None
    ttft: float | None = None
    overhead_ms: float | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    estimated: bool = False
    """The usage is the gateway's count of what was relayed, not the upstream's."""
    relay: Relay = field(default_factory=lambda: Relay(message_id=""))
    settle: Callable[[], None] = lambda: None
    """Charges the key (idempotent): called before the last byte goes out, so that a client that
    sends its next request the moment this one ends finds the budget already settled."""


def _for_backend(snap: Snapshot, name: str, backend: Any, request: MessagesRequest,
                 relay: Relay) -> tuple[MessagesRequest, dict[str, Any]]:
    """The request as ``name`` gets it, and the keyword arguments for the adapter call."""
    model_id = name.split(":", 1)[-1]
    if request.model != model_id:
        request = request.model_copy(update={"model": model_id})
    if hasattr(backend, "sse"):  # the gateway's own fast paths take the relay whole
        return request, {"relay": relay}
    kind = snap.kind(name)
    if kind == "anthropic":
        return request, {"headers": relay.headers} if relay.headers else {}
    if kind == "openai":
        return request, {"warnings": relay.warnings}
    return request, {}


def _falls_back(snap: Snapshot, rule: str, error: ProviderError) -> bool:
    return falls_back(error, on_rate_limit=snap.config.falls_back_on_rate_limit(rule))


def _settle_usage(call: Call, request: MessagesRequest) -> None:
    """The usage to charge: the upstream's when its final count came, else what was relayed."""
    tally = call.relay.tally
    if call.relay.complete and (tally.output_tokens or not tally.deltas):
        call.usage = tally.usage()
    elif tally.deltas or call.status in (499, 529, 500):
        call.usage, call.estimated = tally.estimate(request), True


def _timeout_error(name: str, seconds: float) -> ProviderError:
    provider, _, model = name.partition(":")
    return ProviderError(f"no answer within {seconds:g} s", provider=provider, model=model,
                         kind="timeout_error")


def _headers(call: Call, content_type: bytes = b"application/json") -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type), (b"request-id", call.request_id.encode()),
               (b"x-flotilla-route", f"{call.rule}; model={call.model}".encode()),
               (b"x-flotilla-overhead-ms", f"{call.overhead_ms or 0.0:.3f}".encode())]
    if call.relay.warnings:
        text = "; ".join(dict.fromkeys(call.relay.warnings))
        headers.append((b"x-flotilla-warning", f"not sent to {call.model}: {text}".encode("latin-1", "replace")))
    return headers


async def serve_plain(call: Call, snap: Snapshot, chain: tuple[str, ...], request: MessagesRequest,
                      send: Any, metrics: Metrics) -> None:
    """One JSON answer from the first model in ``chain`` that gives one."""
    timeout = snap.config.timeout_s
    relay = call.relay
    for i, name in enumerate(chain):
        call.model = name
        backend = snap.model(name)
        relay.warnings.clear()
        req, kwargs = _for_backend(snap, name, backend, request, relay)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                if hasattr(backend, "raw"):  # relayed as it came: no parse and re-encode
                    response = await backend.raw(req, **kwargs)
                else:
                    response = await backend.request(req, **kwargs)
            break
        except (ProviderError, TimeoutError) as exc:
            error = exc if isinstance(exc, ProviderError) else _timeout_error(name, timeout)
            if i + 1 < len(chain) and _falls_back(snap, call.rule, error):
                metrics.fallback(name, chain[i + 1])
                continue
            raise from_exception(error, snap.secrets) from None
    upstream = time.perf_counter() - started
    call.ttft = upstream
    if isinstance(response, bytes):
        body = response
        call.usage = relay.tally.usage()
    else:
        call.usage = response.usage
        if response.id != relay.message_id:
            response.id = relay.message_id
        body = response.model_dump_json(exclude_none=True).encode()
    call.overhead_ms = ((time.perf_counter() - call.t0) - upstream) * 1000
    headers = _headers(call)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    call.settle()
    await send({"type": "http.response.body", "body": body})


async def _events_as_sse(events: AsyncIterator[Any], relay: Relay) -> AsyncIterator[bytes]:
    tally = relay.tally
    try:
        async for event in events:
            kind = event.type
            if kind == "content_block_delta":
                count_delta(tally, event.delta)
            elif kind == "message_start":
                tally.take(event.message.usage)
                event.message.id = relay.message_id
            elif kind == "message_delta":
                tally.take(event.usage)
            elif kind == "message_stop":
                relay.complete = True
            yield encode_event(event)
    finally:
        await close_stream(events)


def _sse_source(backend: Any, request: MessagesRequest, kwargs: dict[str, Any], relay: Relay
                ) -> AsyncIterator[bytes]:
    """SSE bytes from a backend: its own ``sse`` fast path when it has one, else its events encoded."""
    if hasattr(backend, "sse"):
        return backend.sse(request, **kwargs)
    return _events_as_sse(backend.stream(request, **kwargs), relay)


async def serve_stream(call: Call, snap: Snapshot, chain: tuple[str, ...], request: MessagesRequest,
                       send: Any, metrics: Metrics, receive: Any = None) -> None:
    """Server-sent events from the first model in ``chain`` whose stream opens."""
    try:
        await _stream(call, snap, chain, request, send, metrics, receive)
    finally:
        _settle_usage(call, request)


async def _stream(call: Call, snap: Snapshot, chain: tuple[str, ...], request: MessagesRequest,
                  send: Any, metrics: Metrics, receive: Any) -> None:
    timeout = snap.config.timeout_s
    loop = asyncio.get_running_loop()
    for i, name in enumerate(chain):
        call.model = name
        if i:  # a fresh tally and warnings for the next model of the chain
            call.relay = Relay(message_id=call.relay.message_id, body=call.relay.body, headers=call.relay.headers)
        relay = call.relay
        backend = snap.model(name)
        req, kwargs = _for_backend(snap, name, backend, request, relay)
        started = time.perf_counter()
        source = _sse_source(backend, req, kwargs, relay)
        try:
            async with asyncio.timeout(timeout):
                first = await anext(source)
            break
        except (ProviderError, TimeoutError, StopAsyncIteration) as exc:
            await close_stream(source)
            if isinstance(exc, StopAsyncIteration):
                raise GatewayError(500, f"{name} ended its stream before any event", "api_error") from None
            error = exc if isinstance(exc, ProviderError) else _timeout_error(name, timeout)
            if i + 1 < len(chain) and _falls_back(snap, call.rule, error):
                metrics.fallback(name, chain[i + 1])
                continue
            raise from_exception(error, snap.secrets) from None
    now = time.perf_counter()
    call.ttft = now - started
    call.overhead_ms = ((now - call.t0) - call.ttft) * 1000
    headers = _headers(call, content_type=b"text/event-stream")
    headers.append((b"cache-control", b"no-cache"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    # The server drops writes to a client that has gone; this watcher notices, so that the
    # upstream generation (which costs tokens) is stopped rather than read to its end.
    gone = asyncio.ensure_future(receive()) if receive is not None else None
    try:
        await send({"type": "http.response.body", "body": first, "more_body": True})
        # One deadline for the silence between events, moved on at most once a second (cheaper than
        # a timeout per event, which cost more than relaying the event).
        async with asyncio.timeout(timeout) as deadline:
            moved = loop.time()
            async for block in source:
                if gone is not None and gone.done():
                    raise ConnectionResetError("the client went away")
                if relay.complete:  # the last block: charge before the client can see message_stop
                    _settle_usage(call, request)
                    call.settle()
                await send({"type": "http.response.body", "body": block, "more_body": True})
                now_l = loop.time()
                if now_l - moved > 1.0:
                    deadline.reschedule(now_l + timeout)
                    moved = now_l
    except (ProviderError, TimeoutError) as exc:
        # Bytes have gone out: no fallback now; tell the client the way Anthropic does.
        error = exc if isinstance(exc, ProviderError) else _timeout_error(call.model, timeout)
        mapped = from_exception(error, snap.secrets)
        kind = "api_error" if mapped.kind == "api_error" else "overloaded_error"
        call.status, call.error = (500 if kind == "api_error" else 529), kind
        late = GatewayError(call.status, f"{call.model} failed mid-stream: {mapped.message}", kind)
        await send({"type": "http.response.body", "body": late.sse(call.request_id), "more_body": True})
    except OSError:
        call.status, call.error = 499, "client_disconnected"
        return
    except Exception:  # a fault of ours mid-stream: the client still gets a proper error event
        log.exception("gateway stream %s failed", call.request_id)
        call.status, call.error = 500, "api_error"
        failed = GatewayError(500, "the gateway failed mid-stream; see its log", "api_error")
        await send({"type": "http.response.body", "body": failed.sse(call.request_id), "more_body": True})
    finally:
        if gone is not None:
            gone.cancel()
        await close_stream(source)
    await send({"type": "http.response.body", "body": b""})
