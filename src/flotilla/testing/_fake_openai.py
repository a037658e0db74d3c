"""The OpenAI Chat Completions wire format as the fake provider speaks it: bodies, chunks, errors."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from ._fake_steps import Answer, split

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "refusal": "content_filter"}

ERRORS = {  # status -> (type, code), as api.openai.com answers
    400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None), 404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"), 500: ("server_error", None), 503: ("server_error", None),
    529: ("overloaded_error", None),
}


def error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    default_type, code = ERRORS.get(status, ("server_error", None))
    # OpenAI repeats a specific type as the code (``insufficient_quota`` …)
    return {"error": {"message": message, "type": kind or default_type, "param": None, "code": kind or code}}


def _usage(answer: Answer) -> dict[str, Any]:
    prompt = answer.input_tokens + answer.cache_read + answer.cache_write
    return {"prompt_tokens": prompt, "completion_tokens": answer.output_tokens,
            "total_tokens": prompt + answer.output_tokens,
            "prompt_tokens_details": {"cached_tokens": answer.cache_read},
            "completion_tokens_details": {"reasoning_tokens": len(answer.thinking or "") // 4}}


def _tool_calls(answer: Answer) -> list[dict[str, Any]]:
    return [{"id": c["id"].replace("toolu_", "call_"), "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["input"])}} for c in answer.tool_uses]


def completion(answer: Answer) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` body."""
    msg: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": None}
    if answer.thinking is not None:
        msg["reasoning_content"] = answer.thinking
    if answer.tool_uses:
        msg["tool_calls"] = _tool_calls(answer)
    return {"id": answer.id.replace("msg_", "chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": answer.model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": msg, "logprobs": None,
                         "finish_reason": FINISH.get(answer.stop_reason, "stop")}],
            "usage": _usage(answer)}


def chunks(answer: Answer, *, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer; tool arguments split over chunks."""
    base = {"id": answer.id.replace("msg_", "chatcmpl-"), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": answer.model, "system_fingerprint": None}
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"reasoning_content": piece}) for piece in split(answer.thinking or "")]
    out += [chunk({"content": piece}) for piece in split(answer.text, answer.pieces)]
    calls = _tool_calls(answer)
    heads = [chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""}}]})
             for i, call in enumerate(calls)]
    args = [[chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
             for piece in split(call["function"]["arguments"])] for i, call in enumerate(calls)]
    if answer.interleave:  # every call opened, then their argument chunks in turn
        out += heads
        out += [c for group in itertools.zip_longest(*args) for c in group if c is not None]
    else:
        for head, pieces in zip(heads, args):
            out += [head, *pieces]
    out.append(chunk({}, FINISH.get(answer.stop_reason, "stop")))
    if include_usage:
        out.append({**base, "choices": [], "usage": _usage(answer)})
    return out


def sse(items: list[dict[str, Any]]) -> list[bytes]:
    return [f"data: {json.dumps(item)}\n\n".encode() for item in items] + [b"data: [DONE]\n\n"]


def input_size(body: dict[str, Any]) -> int:
    return len(json.dumps([body.get("messages"), body.get("tools")]))
