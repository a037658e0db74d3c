"""The OpenAI Chat Completions front door (``POST /v1/chat/completions``): aider, litellm, the
``openai`` SDK and most other tools speak it. Requests become canonical Messages bodies; answers
(whole, or ``chat.completion.chunk`` events ending in ``data: [DONE]``) go back as Chat Completions."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ._wire import image_block, merged, parse_args, sse, text_of

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "pause_turn": "stop", "refusal": "content_filter"}
DEFAULT_MAX_TOKENS = 8192


def to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request as a canonical Messages body."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for m in body.get("messages") or []:
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            system.append(text_of(content))
        elif role == "tool":
            result = {"type": "tool_result", "tool_use_id": m.get("tool_call_id", ""), "content": text_of(content)}
            messages.append({"role": "user", "content": [result]})
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": text_of(content)}] if text_of(content) else []
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id") or f"call_{len(blocks)}",
                               "name": fn.get("name", ""), "input": parse_args(fn.get("arguments"))})
            messages.append({"role": "assistant", "content": blocks})
        else:
            messages.append({"role": "user", "content": _user_blocks(content)})
    out: dict[str, Any] = {"model": body.get("model", ""), "messages": merged(messages),
                           "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                           or DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    tools = [_tool(t) for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice:
            out["tool_choice"] = choice
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return out


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or []:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = part["image_url"] if isinstance(part["image_url"], str) else part["image_url"].get("url", "")
            blocks.append(image_block(url))
    return blocks


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function") or tool
    return {"name": fn["name"], "description": fn.get("description") or "",
            "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice in (None, "auto"):
        return None
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("function"):
        return {"type": "tool", "name": choice["function"]["name"]}
    return None


def usage(u: dict[str, Any]) -> dict[str, Any]:
    cached = (u.get("cache_read_input_tokens") or 0)
    prompt = (u.get("input_tokens") or 0) + cached + (u.get("cache_creation_input_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": u.get("output_tokens") or 0,
            "total_tokens": prompt + (u.get("output_tokens") or 0), "prompt_tokens_details": {"cached_tokens": cached}}


def from_message(message: dict[str, Any], model: str) -> dict[str, Any]:
    """A canonical answer as a ``chat.completion``."""
    text = "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": json.dumps(b.get("input", {}))}}
             for b in message.get("content", []) if b.get("type") == "tool_use"]
    reply: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        reply["tool_calls"] = calls
    return {"id": "chatcmpl-" + str(message.get("id", ""))[4:], "object": "chat.completion",
            "created": int(time.time()), "model": model or message.get("model", ""),
            "choices": [{"index": 0, "message": reply, "logprobs": None,
                         "finish_reason": FINISH.get(message.get("stop_reason") or "end_turn", "stop")}],
            "usage": usage(message.get("usage") or {})}


class ChatStream:
    """Canonical stream events → ``chat.completion.chunk`` events."""

    content_type = b"text/event-stream"

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model, self.include_usage = model, include_usage
        self.id = "chatcmpl-" + os.urandom(12).hex()
        self.created = int(time.time())
        self.tools: dict[int, int] = {}
        """Canonical block index → the tool call's index among this answer's calls."""
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def feed(self, event: dict[str, Any]) -> list[bytes]:
        kind = event.get("type")
        if kind == "message_start":
            self.usage.update((event.get("message") or {}).get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.tools[event["index"]] = n = len(self.tools)
                return [self._chunk({"tool_calls": [{"index": n, "id": block["id"], "type": "function",
                                                     "function": {"name": block["name"], "arguments": ""}}]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta" and event.get("index") in self.tools:
                return [self._chunk({"tool_calls": [{"index": self.tools[event["index"]],
                                                     "function": {"arguments": delta.get("partial_json", "")}}]})]
            if delta.get("type") == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            return []
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v})
            self.finish = FINISH.get((event.get("delta") or {}).get("stop_reason") or "end_turn", "stop")
            return [self._chunk({}, self.finish)]
        if kind == "error":
            return [sse({"error": event.get("error") or {}})]
        return []

    def close(self) -> list[bytes]:
        out = []
        if self.include_usage:
            out.append(sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": usage(self.usage)}))
        return out + [b"data: [DONE]\n\n"]


class ChatDoor:
    """``/v1/chat/completions``."""

    def __init__(self) -> None:
        self.model = ""
        self.include_usage = False

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        self.model = str(body.get("model", ""))
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return to_messages(body)

    def response(self, message: dict[str, Any]) -> dict[str, Any]:
        return from_message(message, self.model)

    def error(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        return {"error": {"message": error.get("message", ""), "type": error.get("type", "api_error"),
                          "param": None, "code": status}}

    def stream(self) -> ChatStream:
        return ChatStream(self.model, self.include_usage)
