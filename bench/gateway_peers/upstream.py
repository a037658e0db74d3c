"""The benchmark's fake upstream: a bare ASGI app speaking OpenAI Chat Completions.

``POST /v1/chat/completions`` answers at once, plain JSON or SSE with about 20
text chunks (and a usage chunk when asked). Run with
``python -m uvicorn upstream:app --port N`` (httptools and uvloop when present).
"""

from __future__ import annotations

import json

WORDS = ("Hello", " from", " the", " fake", " upstream", ":", " this", " answer", " is", " streamed", " in",
         " about", " twenty", " small", " chunks", " so", " that", " relaying", " costs", " show", ".")
TEXT = "".join(WORDS)
USAGE = {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)}
PLAIN = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
    "usage": USAGE}).encode()


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "bench-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body["choices"] = []
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = ([_chunk({"role": "assistant", "content": ""})] + [_chunk({"content": w}) for w in WORDS]
          + [_chunk({}, "stop")])
STREAM_USAGE = _chunk({}, usage=USAGE)
DONE = b"data: [DONE]\n\n"


async def app(scope, receive, send):  # noqa: ANN001 - a bare ASGI callable
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":  # /v1/models and health probes
        payload = b'{"object": "list", "data": [{"id": "bench-model", "object": "model"}]}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
        return
    request = json.loads(body or b"{}")
    if not request.get("stream"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(PLAIN)).encode())]})
        await send({"type": "http.response.body", "body": PLAIN})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
    for piece in STREAM:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    if (request.get("stream_options") or {}).get("include_usage"):
        await send({"type": "http.response.body", "body": STREAM_USAGE, "more_body": True})
    await send({"type": "http.response.body", "body": DONE})
