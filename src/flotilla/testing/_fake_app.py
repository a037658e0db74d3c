"""The fake provider's ASGI application: script state, the request log and the wire formats (Messages and
Chat Completions natively; Responses and Gemini through the gateway's front doors)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _fake_anthropic as anth
from . import _fake_openai as oai
from ..gateway.front import door_for, open_door
from ._fake_steps import check_step, last_user_text, make_answer

Script = dict[str, Any]


@dataclass
class Received:
    """One request the fake provider received."""

    path: str
    model: str | None
    body: Any
    headers: dict[str, str]
    query: str = ""


class FakeProviderApp:
    """The ASGI application: script state, request log and the two wire formats."""

    def __init__(self, script: Script | None = None, *, api_key: str | None = None) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, list[Any]] = {}
        self._repeat: dict[str, Any] = {}
        self._used: dict[str, int] = {}
        self.api_key = api_key
        self.received: list[Received] = []
        for model, steps in (script or {}).items():
            self.add(model, steps)

    def add(self, model: str, steps: Any) -> None:
        """Appends steps for ``model``; a single dict (or callable) answers every request."""
        for step in steps if isinstance(steps, list) else [steps]:
            check_step(step)
        with self._lock:
            if isinstance(steps, list):
                self._steps.setdefault(model, []).extend(steps)
                self._repeat.pop(model, None)
            else:
                self._repeat[model] = steps

    def count(self, model: str | None = None) -> int:
        """Generation requests received (``count_tokens`` excluded), for one model or all."""
        return sum(1 for r in self.received if r.path != "/v1/messages/count_tokens"
                   and (model is None or r.model == model))

    def _next_step(self, model: str) -> Any:
        with self._lock:
            if model in self._repeat:
                return self._repeat[model]
            if model not in self._steps:
                return None
            used = self._used.get(model, 0)
            if used >= len(self._steps[model]):
                return {"status": 400, "message": f"fake provider: the script for model {model!r} has "
                                                  f"{used} steps and all were used"}
            self._used[model] = used + 1
            return self._steps[model][used]

    def _models(self, anthropic_format: bool) -> dict[str, Any]:
        """``GET /v1/models``: the scripted models, in the format the client's headers ask for."""
        names = sorted({*self._steps, *self._repeat})
        if anthropic_format:
            data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"}
                    for n in names]
            return {"data": data, "has_more": False, "first_id": names[0] if names else None,
                    "last_id": names[-1] if names else None}
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "fake"}
                                           for n in names]}

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        door = door_for(scope["method"], scope["path"], scope.get("query_string", b""))
        if door is not None and not scope["path"].endswith("/chat/completions"):
            # Responses and Gemini: the gateway's own front door makes them Messages, answered as such
            scope, receive, send = open_door(door, scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"].rstrip("/")
        if path.endswith("/chat/completions"):
            path = "/v1/chat/completions"  # base URLs with or without /v1
        await self._handle(path, raw, headers, scope.get("query_string", b"").decode(), scope["method"], send)

    async def _handle(self, path: str, raw: bytes, headers: dict[str, str], query: str, method: str,
                      send: Callable) -> None:
        fmt = oai if path == "/v1/chat/completions" else anth
        if method == "GET" and path in ("", "/health"):
            return await _send(send, 200, b'{"ok": true}')
        if method == "GET" and path == "/_flotilla/counts":  # per-model generation requests, for tests
            received = [r.model for r in self.received if r.path != "/v1/messages/count_tokens"]
            return await _send_json(send, 200, {m: received.count(m) for m in sorted(set(received))})
        if method == "GET" and path == "/v1/models":
            return await _send_json(send, 200, self._models("anthropic-version" in headers))
        if path not in ("/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions") or method != "POST":
            return await _send_json(send, 404, fmt.error_body(404, f"no route {method} {path}"))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.received.append(Received(path, None, raw.decode(errors="replace"), headers, query))
            return await _send_json(send, 400, fmt.error_body(400, "request body is not valid JSON"))
        model = body.get("model") if isinstance(body, dict) else None
        self.received.append(Received(path, model, body, headers, query))
        if self.api_key is not None and not _key_ok(headers, self.api_key, fmt is anth):
            return await _send_json(send, 401, fmt.error_body(401, "invalid x-api-key" if fmt is anth
                                                              else "Incorrect API key provided."))
        missing = [k for k in ("model", "messages") + (("max_tokens",) if path == "/v1/messages" else ())
                   if k not in body]
        if missing:
            return await _send_json(send, 400, fmt.error_body(400, f"{missing[0]}: Field required"))
        if path == "/v1/messages/count_tokens":
            return await _send_json(send, 200, {"input_tokens": max(1, anth.input_size(body) // 4)})
        step = self._next_step(model)
        if step is None:
            message = (f"model: {model}" if fmt is anth else
                       f"The model `{model}` does not exist or you do not have access to it.")
            return await _send_json(send, 404, fmt.error_body(404, message, "not_found_error" if fmt is anth else None))
        if callable(step):
            step = step(body)
        answer = make_answer(step, model=model, prompt_chars=fmt.input_size(body),
                             last_user_text=last_user_text(body))
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.status is not None:
            extra = {"retry-after": f"{answer.retry_after:g}"} if answer.retry_after is not None else {}
            text = answer.message or {529: "Overloaded", 429: "Rate limited", 500: "Internal server error"}.get(
                answer.status, "error")
            if answer.echo_auth:
                text += f" (you sent key {headers.get('authorization') or headers.get('x-api-key') or 'none'})"
            return await _send_json(send, answer.status, fmt.error_body(answer.status, text, answer.error_type), extra)
        if answer.malformed:
            if body.get("stream"):  # well-formed SSE framing around data that is not JSON
                frame = b"event: message_start\n" if fmt is anth else b""
                return await _send(send, 200, frame + b'data: {"type": "message_start", "mess\n\n',
                                   b"text/event-stream")
            return await _send(send, 200, b'{"id": "msg_fake", "content": [{"type": "te')
        if body.get("stream"):
            if fmt is anth:
                pieces = anth.sse(anth.events(answer))
            else:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                pieces = oai.sse(oai.chunks(answer, include_usage=include))
            if answer.stream_error:
                error = fmt.error_body(500, answer.message or "Overloaded", answer.stream_error)
                keep = 3 if answer.cut_after is None else answer.cut_after
                frame = (f"event: error\ndata: {json.dumps(error)}\n\n" if fmt is anth
                         else f"data: {json.dumps(error)}\n\n")
                return await _send_stream(send, pieces[:keep] + [frame.encode()], answer.event_delay, None)
            return await _send_stream(send, pieces, answer.event_delay, answer.cut_after)
        payload = json.dumps(anth.message(answer) if fmt is anth else oai.completion(answer)).encode()
        if answer.cut_after is not None:
            return await _send_cut(send, payload)
        return await _send(send, 200, payload)


def _key_ok(headers: dict[str, str], key: str, anthropic_format: bool) -> bool:
    bearer = headers.get("authorization", "")
    if anthropic_format and headers.get("x-api-key") == key:
        return True
    return bearer == f"Bearer {key}"


def _headers(content_type: bytes, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", content_type), (b"request-id", b"req_fake"), (b"x-request-id", b"req_fake")]
    return out + [(k.encode(), v.encode()) for k, v in (extra or {}).items()]


async def _send(send: Callable, status: int, payload: bytes, content_type: bytes = b"application/json",
                extra: dict[str, str] | None = None) -> None:
    headers = _headers(content_type, extra) + [(b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_json(send: Callable, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
    await _send(send, status, json.dumps(body).encode(), b"application/json", extra)


async def _send_stream(send: Callable, pieces: list[bytes], delay: float, cut_after: int | None) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": _headers(b"text/event-stream; charset=utf-8") + [(b"cache-control", b"no-cache")]})
    for i, piece in enumerate(pieces):
        if cut_after is not None and i >= cut_after:
            return  # returning before the last body message makes the server drop the connection
        if delay and i:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _send_cut(send: Callable, payload: bytes) -> None:
    headers = _headers(b"application/json") + [(b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
