"""The gateway's other front doors: OpenAI Chat Completions, OpenAI Responses and Gemini, as Messages.

A front door is a pair of translations around the one Messages path: the client's request body
becomes a canonical (Anthropic Messages) body on the way in, and the canonical answer (JSON, or
server-sent events as they come) becomes the client's format on the way out. Everything between
(keys, budgets, routing, fallbacks, accounting, the request log) is the ``/v1/messages`` code
itself, so a Codex or Gemini CLI request is admitted, routed and charged exactly as a Claude Code
one. ``open_door`` wraps the ASGI ``scope``/``receive``/``send`` of a request for a door; the
Messages handler never knows.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import parse_qs

from .errors import GatewayError

_STATUS_KIND = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


class Door(Protocol):
    """One wire format's translations (a module: ``front_chat``, ``front_responses``, ``front_gemini``);
    a door may name another ``target`` than ``/v1/messages`` (Gemini's ``countTokens``)."""

    def request(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def response(self, message: dict[str, Any]) -> dict[str, Any]: ...
    def error(self, status: int, error: dict[str, Any]) -> dict[str, Any]: ...
    def stream(self) -> Any: ...


def door_for(method: str, path: str, query: bytes) -> Door | None:
    """The front door serving ``method path``, or None (a path the Messages router knows, or a 404)."""
    if method != "POST":
        return None
    if path in ("/v1/chat/completions", "/chat/completions"):
        from .front_chat import ChatDoor

        return ChatDoor()
    if path in ("/v1/responses", "/responses"):
        from .front_responses import ResponsesDoor

        return ResponsesDoor()
    if path.startswith(("/v1beta/models/", "/v1/models/")) and ":" in path.rsplit("/", 1)[-1]:
        from .front_gemini import GeminiDoor

        name, _, verb = path.split("/models/", 1)[1].rpartition(":")
        if verb in ("generateContent", "streamGenerateContent", "countTokens"):
            sse = parse_qs(query.decode("latin-1")).get("alt") == ["sse"]
            return GeminiDoor(model=name, stream=verb == "streamGenerateContent", sse=sse, count=verb == "countTokens")
    return None


def open_door(door: Door, scope: dict[str, Any], receive: Any, send: Any) -> tuple[dict[str, Any], Any, Any]:
    """The request as the Messages handler reads it (path, key header, canonical body) and a ``send``
    that answers in the door's format."""
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    names = {k for k, _ in headers}
    key = dict(scope["headers"]).get(b"x-goog-api-key") or _query_key(scope.get("query_string", b""))
    if key and b"x-api-key" not in names:
        headers.append((b"x-api-key", key))
    scope = {**scope, "path": getattr(door, "target", "/v1/messages"), "headers": headers}
    return scope, _Receive(door, receive), _Send(door, send)


def _query_key(query: bytes) -> bytes | None:
    found = parse_qs(query.decode("latin-1")).get("key")
    return found[0].encode("latin-1") if found else None


class _Receive:
    """Reads the client's whole body once and hands the handler its canonical translation; later
    calls (the handler's watch for a client that left) go to the client's own ``receive``."""

    def __init__(self, door: Door, receive: Any) -> None:
        self.door, self.receive, self.done = door, receive, False

    async def __call__(self) -> dict[str, Any]:
        if self.done:
            return await self.receive()
        self.done = True
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return message
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        try:
            data = json.loads(b"".join(chunks) or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise GatewayError(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise GatewayError(400, "the request body must be a JSON object")
        try:
            body = self.door.request(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GatewayError(400, f"the request cannot be read: {type(exc).__name__}: {exc}") from None
        return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}


class _Send:
    """Translates the handler's answer: a JSON body whole (its length changes), or SSE as it comes."""

    def __init__(self, door: Door, send: Any) -> None:
        self.door, self.send = door, send
        self.start: dict[str, Any] | None = None
        self.stream: Any = None
        self.chunks: list[bytes] = []
        self.buffer = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            if self.stream is not None:  # as the server itself would: a response starts once
                raise RuntimeError("the response has already started")
            self.start = message
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if content_type.startswith(b"text/event-stream"):
                self.stream = self.door.stream()
                await self.send({**message, "headers": _replace_type(message["headers"], self.stream.content_type)})
            return
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        if self.stream is not None:
            out = self._events(body)
            if not more:
                out += self.stream.close()
            if out or not more:
                await self.send({"type": "http.response.body", "body": b"".join(out), "more_body": more})
            return
        self.chunks.append(body)
        if more:
            return
        await self._whole(b"".join(self.chunks))

    def _events(self, data: bytes) -> list[bytes]:
        self.buffer += data
        out: list[bytes] = []
        while b"\n\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            for line in raw.split(b"\n"):
                if line.startswith(b"data:"):
                    try:
                        event = json.loads(line[5:])
                    except ValueError:
                        continue
                    out += self.stream.feed(event)
        return out

    async def _whole(self, raw: bytes) -> None:
        assert self.start is not None
        status = self.start["status"]
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = None
        if isinstance(data, dict):
            if status >= 400:
                error = data.get("error") or {"type": _STATUS_KIND.get(status, "api_error"), "message": str(data)}
                data = self.door.error(status, error)
            else:
                data = self.door.response(data)
            raw = json.dumps(data).encode()
        headers = [(k, v) for k, v in self.start["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": raw})


def _replace_type(headers: list[tuple[bytes, bytes]], content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [(k, content_type if k == b"content-type" else v) for k, v in headers]
