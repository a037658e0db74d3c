"""The Anthropic Messages wire format as the fake provider speaks it: bodies, SSE events, errors."""

from __future__ import annotations

import json
from typing import Any

from ._fake_steps import Answer, split

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


def error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    """``{"type": "error", "error": {"type": …, "message": …}}`` as the real service sends."""
    return {"type": "error", "error": {"type": kind or ERROR_TYPES.get(status, "api_error"), "message": message}}


def _usage(answer: Answer) -> dict[str, Any]:
    return {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens,
            "cache_creation_input_tokens": answer.cache_write, "cache_read_input_tokens": answer.cache_read}


def _blocks(answer: Answer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.thinking is not None:
        blocks.append({"type": "thinking", "thinking": answer.thinking, "signature": answer.signature})
    if answer.text:
        blocks.append({"type": "text", "text": answer.text})
    for call in answer.tool_uses:
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["input"]})
    return blocks


def message(answer: Answer) -> dict[str, Any]:
    """The non-streamed ``message`` body."""
    return {"id": answer.id, "type": "message", "role": "assistant", "model": answer.model,
            "content": _blocks(answer), "stop_reason": answer.stop_reason, "stop_sequence": None,
            "usage": _usage(answer)}


def events(answer: Answer) -> list[tuple[str, dict[str, Any]]]:
    """The SSE ``(event, data)`` pairs of a streamed answer, deltas split over several events."""
    head = {**message(answer), "content": [], "stop_reason": None,
            "usage": {**_usage(answer), "output_tokens": 1}}
    out: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": head})]
    for index, block in enumerate(_blocks(answer)):
        kind = block["type"]
        if kind == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in split(block["text"], answer.pieces)]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in split(json.dumps(block["input"]), 3, keep_empty=True)]
        out.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        if index == 0:
            out.append(("ping", {"type": "ping"}))
        out += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": answer.stop_reason, "stop_sequence": None},
                                  "usage": _usage(answer)}))
    out.append(("message_stop", {"type": "message_stop"}))
    return out


def sse(pairs: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in pairs]


def input_size(body: dict[str, Any]) -> int:
    """Characters of the prompt: system, messages and tools."""
    return len(json.dumps([body.get("system"), body.get("messages"), body.get("tools")]))
