"""The benchmark's fake upstream: a bare ASGI app speaking OpenAI Chat Completions and Anthropic Messages.

``POST /v1/chat/completions`` answers at once, plain JSON or SSE with about 20
text chunks (and a usage chunk when asked); ``POST /v1/messages`` the same answer
in Anthropic's shape (for the front-door figures: Responses in, Anthropic out). Run with
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
MESSAGE = json.dumps({"id": "msg_bench", "type": "message", "role": "assistant", "model": "bench-model",
                      "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
                      "usage": {"input_tokens": 12, "output_tokens": len(WORDS)}}).encode()


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **data}).encode() + b"\n\n"


EVENTS = ([_event("message_start", {"message": {"id": "msg_bench", "type": "message", "role": "assistant",
                                                "model": "bench-model", "content": [], "stop_reason": None,
                                                "usage": {"input_tokens": 12, "output_tokens": 1}}}),
           _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})]
          + [_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}}) for w in WORDS]
          + [_event("content_block_stop", {"index": 0}),
             _event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": len(WORDS)}}),
             _event("message_stop", {})])


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
    if scope["path"].endswith("/messages"):
        await _messages(send, bool(request.get("stream")))
        return
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


async def _messages(send, stream: bool) -> None:  # noqa: ANN001
    if not stream:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(MESSAGE)).encode())]})
        await send({"type": "http.response.body", "body": MESSAGE})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
    for piece in EVENTS[:-1]:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": EVENTS[-1]})
