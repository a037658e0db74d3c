"""The Gemini front door (``POST /v1beta/models/MODEL:generateContent``, ``:streamGenerateContent``
and ``:countTokens``, as Gemini CLI and the ``google-genai`` SDK call them): ``contents``
with their parts (text, ``functionCall``, ``functionResponse``, inline data), ``systemInstruction``,
``functionDeclarations`` and ``generationConfig`` become a canonical Messages body; the answer goes
back as ``GenerateContentResponse`` objects, streamed as SSE with ``?alt=sse`` or else as one JSON
array. Gemini's function calls carry no ids: each call gets one here, and a ``functionResponse``
answers the oldest call of its name still unanswered. The key comes as ``x-goog-api-key`` or
``?key=`` (see ``front.open_door``)."""

from __future__ import annotations

import json
import os
from typing import Any

from ._wire import merged, sse

FINISH = {"end_turn": "STOP", "stop_sequence": "STOP", "tool_use": "STOP", "max_tokens": "MAX_TOKENS",
          "refusal": "SAFETY"}
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 529: "UNAVAILABLE", 503: "UNAVAILABLE"}
DEFAULT_MAX_TOKENS = 8192


def to_messages(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``generateContent`` request as a canonical Messages body."""
    pending: dict[str, list[str]] = {}
    count = 0
    messages: list[dict[str, Any]] = []
    for content in body.get("contents") or []:
        role = "assistant" if content.get("role") == "model" else "user"
        blocks: list[dict[str, Any]] = []
        for part in content.get("parts") or []:
            if part.get("thought"):
                continue  # the model's own thoughts, signed for Gemini alone
            if "text" in part:
                if part["text"]:
                    blocks.append({"type": "text", "text": part["text"]})
            elif "functionCall" in part:
                call = part["functionCall"]
                count += 1
                ident = call.get("id") or f"call_{count}_{call.get('name', '')}"
                pending.setdefault(call.get("name", ""), []).append(ident)
                blocks.append({"type": "tool_use", "id": ident, "name": call.get("name", ""),
                               "input": call.get("args") or {}})
            elif "functionResponse" in part:
                answer = part["functionResponse"]
                queue = pending.get(answer.get("name", ""), [])
                ident = answer.get("id") or (queue.pop(0) if queue else f"call_{answer.get('name', '')}")
                if answer.get("id") and ident in queue:
                    queue.remove(ident)
                result = answer.get("response")
                text = result.get("output") if isinstance(result, dict) and isinstance(result.get("output"), str) \
                    else json.dumps(result)
                blocks.append({"type": "tool_result", "tool_use_id": ident, "content": text})
            elif "inlineData" in part:
                data = part["inlineData"]
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": data.get("mimeType", ""),
                                                           "data": data.get("data", "")}})
        messages.append({"role": role, "content": blocks})
    config = body.get("generationConfig") or {}
    out: dict[str, Any] = {"model": model, "messages": merged(messages),
                           "max_tokens": config.get("maxOutputTokens") or DEFAULT_MAX_TOKENS}
    system = "".join(p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts") or [])
    if system:
        out["system"] = system
    tools = [_tool(f) for t in body.get("tools") or [] for f in t.get("functionDeclarations") or []]
    if tools:
        out["tools"] = tools
        mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
        if mode == "ANY":
            out["tool_choice"] = {"type": "any"}
        elif mode == "NONE":
            out["tool_choice"] = {"type": "none"}
    for key, ours in (("temperature", "temperature"), ("topP", "top_p"), ("topK", "top_k"),
                      ("stopSequences", "stop_sequences")):
        if config.get(key) is not None:
            out[ours] = config[key]
    return out


def _tool(fn: dict[str, Any]) -> dict[str, Any]:
    schema = fn.get("parametersJsonSchema") or _lower_types(fn.get("parameters")) or {"type": "object",
                                                                                      "properties": {}}
    return {"name": fn["name"], "description": fn.get("description") or "", "input_schema": schema}


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-style schema (``"type": "OBJECT"``) as JSON Schema."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def usage(u: dict[str, Any]) -> dict[str, Any]:
    cached = u.get("cache_read_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + cached + (u.get("cache_creation_input_tokens") or 0)
    output = u.get("output_tokens") or 0
    out = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _part(block: dict[str, Any]) -> dict[str, Any] | None:
    if block.get("type") == "text":
        return {"text": block.get("text", "")}
    if block.get("type") == "tool_use":
        return {"functionCall": {"name": block["name"], "args": block.get("input") or {}}}
    if block.get("type") == "thinking":
        return {"text": block.get("thinking", ""), "thought": True}
    return None


def chunk(parts: list[dict[str, Any]], model: str, ident: str, *, finish: str | None = None,
          u: dict[str, Any] | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": ident}
    if u is not None:
        out["usageMetadata"] = usage(u)
    return out


class GeminiStream:
    """Canonical stream events → ``GenerateContentResponse`` chunks (SSE, or one JSON array)."""

    def __init__(self, model: str, sse_format: bool) -> None:
        self.model, self.sse = model, sse_format
        self.content_type = b"text/event-stream" if sse_format else b"application/json"
        self.id = os.urandom(12).hex()
        self.tools: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.stop = "end_turn"
        self.sent = 0
        self.failed: dict[str, Any] | None = None

    def _out(self, data: dict[str, Any]) -> bytes:
        self.sent += 1
        if self.sse:
            return sse(data)
        return (b"[" if self.sent == 1 else b",\r\n") + json.dumps(data).encode()

    def feed(self, event: dict[str, Any]) -> list[bytes]:
        kind = event.get("type")
        if kind == "message_start":
            self.usage.update((event.get("message") or {}).get("usage") or {})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.tools[event["index"]] = {**block, "json": ""}
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._out(chunk([{"text": delta["text"]}], self.model, self.id))]
            if delta.get("type") == "thinking_delta" and delta.get("thinking"):
                return [self._out(chunk([{"text": delta["thinking"], "thought": True}], self.model, self.id))]
            if delta.get("type") == "input_json_delta" and event.get("index") in self.tools:
                self.tools[event["index"]]["json"] += delta.get("partial_json", "")
        elif kind == "content_block_stop" and event.get("index") in self.tools:
            block = self.tools.pop(event["index"])
            args = json.loads(block["json"] or "{}")
            return [self._out(chunk([{"functionCall": {"name": block["name"], "args": args}}], self.model, self.id))]
        elif kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v})
            self.stop = (event.get("delta") or {}).get("stop_reason") or self.stop
        elif kind == "error":
            self.failed = event.get("error") or {}
        return []

    def close(self) -> list[bytes]:
        if self.failed is not None:
            error = {"error": {"code": 500, "message": self.failed.get("message", ""), "status": "INTERNAL"}}
            last = self._out(error)
        else:
            last = self._out(chunk([{"text": ""}], self.model, self.id, finish=FINISH.get(self.stop, "STOP"),
                                   u=self.usage))
        return [last] if self.sse else [last, b"]"]


class GeminiDoor:
    """``/v1beta/models/MODEL:generateContent`` and ``:streamGenerateContent``."""

    def __init__(self, model: str, stream: bool, sse: bool, count: bool = False) -> None:
        self.model, self.streaming, self.sse, self.count = model, stream, sse, count
        self.target = "/v1/messages/count_tokens" if count else "/v1/messages"

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.count:  # countTokens may wrap its request: {"generateContentRequest": {…}}
            out = to_messages(body.get("generateContentRequest") or body, self.model)
            out.pop("max_tokens", None)
            return out
        out = to_messages(body, self.model)
        if self.streaming:
            out["stream"] = True
        return out

    def response(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.count:
            return {"totalTokens": message.get("input_tokens", 0)}
        parts = [p for p in (_part(b) for b in message.get("content", [])) if p is not None]
        return chunk(parts or [{"text": ""}], self.model, str(message.get("id", "")),
                     finish=FINISH.get(message.get("stop_reason") or "end_turn", "STOP"),
                     u=message.get("usage") or {})

    def error(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        return {"error": {"code": status, "message": error.get("message", ""),
                          "status": STATUS.get(status, "INTERNAL")}}

    def stream(self) -> GeminiStream:
        return GeminiStream(self.model, self.sse)
