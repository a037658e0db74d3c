"""The OpenAI Responses front door (``POST /v1/responses``), enough for Codex CLI, which speaks
nothing else: ``instructions`` and ``input`` items (messages, function calls and their outputs,
custom tool calls) become a canonical Messages body; the answer goes back as a ``response`` object
or as its semantic stream (``response.created`` … ``response.output_text.delta`` …
``response.function_call_arguments.delta`` … ``response.completed``). Tools the canonical model
cannot carry (``web_search``, ``namespace`` groups) are left out; reasoning items sent back are
dropped (their encrypted content belongs to another provider)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ._wire import image_block, merged, sse, text_of, parse_args

DEFAULT_MAX_TOKENS = 16384
_CUSTOM_SCHEMA = {"type": "object", "properties": {"input": {"type": "string", "description": "The tool's input."}},
                  "required": ["input"]}


def to_messages(body: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """A Responses request as a canonical Messages body, and the names of its custom (freeform) tools."""
    system = [body["instructions"]] if body.get("instructions") else []
    messages: list[dict[str, Any]] = []
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message":
            role, content = item.get("role", "user"), item.get("content")
            if role in ("system", "developer"):
                system.append(text_of(content))
            else:
                messages.append({"role": "assistant" if role == "assistant" else "user",
                                 "content": _blocks(content)})
        elif kind in ("function_call", "custom_tool_call"):
            value = parse_args(item.get("arguments")) if kind == "function_call" else {"input": item.get("input", "")}
            messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": item.get("call_id", ""),
                                                               "name": item.get("name", ""), "input": value}]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": item.get("call_id", ""),
                                                          "content": output if isinstance(output, str)
                                                          else text_of(output) or json.dumps(output)}]})
    tools, custom = [], set()
    for tool in body.get("tools") or []:
        if tool.get("type") == "function":
            tools.append({"name": tool["name"], "description": tool.get("description") or "",
                          "input_schema": tool.get("parameters") or {"type": "object", "properties": {}}})
        elif tool.get("type") == "custom":
            custom.add(tool["name"])
            tools.append({"name": tool["name"], "description": tool.get("description") or "",
                          "input_schema": _CUSTOM_SCHEMA})
    out: dict[str, Any] = {"model": body.get("model", ""), "messages": merged(messages),
                           "max_tokens": body.get("max_output_tokens") or DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    if tools:
        out["tools"] = tools
        choice = body.get("tool_choice")
        if choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif choice == "none":
            out["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict) and choice.get("name"):
            out["tool_choice"] = {"type": "tool", "name": choice["name"]}
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    return out, custom


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and part.get("image_url"):
            blocks.append(image_block(part["image_url"]))
    return blocks


def usage(u: dict[str, Any]) -> dict[str, Any]:
    cached = u.get("cache_read_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + cached + (u.get("cache_creation_input_tokens") or 0)
    output = u.get("output_tokens") or 0
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + output}


def item(block: dict[str, Any], custom: set[str], ident: str) -> dict[str, Any] | None:
    """One canonical content block as a Responses output item."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "message", "id": ident, "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": block.get("text", ""), "annotations": []}]}
    if kind == "tool_use" and block.get("name") in custom:
        return {"type": "custom_tool_call", "id": ident, "call_id": block["id"], "name": block["name"],
                "input": str((block.get("input") or {}).get("input", "")), "status": "completed"}
    if kind == "tool_use":
        return {"type": "function_call", "id": ident, "call_id": block["id"], "name": block["name"],
                "arguments": json.dumps(block.get("input") or {}), "status": "completed"}
    if kind == "thinking":
        return {"type": "reasoning", "id": ident,
                "summary": [{"type": "summary_text", "text": block.get("thinking", "")}]}
    return None


def response(ident: str, model: str, output: list[dict[str, Any]], status: str, u: dict[str, Any] | None,
             ) -> dict[str, Any]:
    return {"id": ident, "object": "response", "created_at": int(time.time()), "status": status, "model": model,
            "output": output, "usage": usage(u) if u is not None else None, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": None, "metadata": {}, "parallel_tool_calls": True, "temperature": None,
            "tool_choice": "auto", "tools": [], "top_p": None}


class ResponsesStream:
    """Canonical stream events → the Responses API's semantic events."""

    content_type = b"text/event-stream"

    def __init__(self, model: str, custom: set[str]) -> None:
        self.model, self.custom = model, custom
        self.id = "resp_" + os.urandom(12).hex()
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.open: dict[int, dict[str, Any]] = {}
        """Canonical block index → the output item being built (with its text or arguments so far)."""
        self.usage: dict[str, Any] = {}
        self.stop = "end_turn"
        self.failed: dict[str, Any] | None = None

    def _event(self, kind: str, **data: Any) -> bytes:
        self.seq += 1
        return sse({"type": kind, "sequence_number": self.seq, **data}, kind)

    def feed(self, event: dict[str, Any]) -> list[bytes]:
        kind = event.get("type")
        if kind == "message_start":
            self.usage.update((event.get("message") or {}).get("usage") or {})
            shell = response(self.id, self.model, [], "in_progress", None)
            return [self._event("response.created", response=shell),
                    self._event("response.in_progress", response=shell)]
        if kind == "content_block_start":
            return self._start(event["index"], event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._delta(event.get("index"), event.get("delta") or {})
        if kind == "content_block_stop":
            return self._stop(event.get("index"))
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v})
            self.stop = (event.get("delta") or {}).get("stop_reason") or self.stop
        elif kind == "error":
            self.failed = event.get("error") or {}
        return []

    def _start(self, index: int, block: dict[str, Any]) -> list[bytes]:
        n, kind = len(self.output) + len(self.open), block.get("type")
        ident = {"text": "msg_", "tool_use": "fc_", "thinking": "rs_"}.get(kind or "", "it_") + os.urandom(8).hex()
        if kind == "text":
            state = {"n": n, "kind": "text", "id": ident, "text": ""}
            shell = {"type": "message", "id": ident, "status": "in_progress", "role": "assistant", "content": []}
            part = {"type": "output_text", "text": "", "annotations": []}
            self.open[index] = state
            return [self._event("response.output_item.added", output_index=n, item=shell),
                    self._event("response.content_part.added", item_id=ident, output_index=n, content_index=0,
                                part=part)]
        if kind == "tool_use":
            state = {"n": n, "kind": "tool_use", "id": ident, "text": "", "block": block}
            self.open[index] = state
            shell = item({**block, "input": {}}, self.custom, ident) or {}
            shell["status"] = "in_progress"
            if shell.get("type") == "function_call":
                shell["arguments"] = ""
            return [self._event("response.output_item.added", output_index=n, item=shell)]
        if kind == "thinking":
            self.open[index] = {"n": n, "kind": "thinking", "id": ident, "text": ""}
            return [self._event("response.output_item.added", output_index=n,
                                item={"type": "reasoning", "id": ident, "summary": []})]
        return []

    def _delta(self, index: Any, delta: dict[str, Any]) -> list[bytes]:
        state = self.open.get(index)
        if state is None:
            return []
        if delta.get("type") == "text_delta":
            state["text"] += delta.get("text", "")
            return [self._event("response.output_text.delta", item_id=state["id"], output_index=state["n"],
                                content_index=0, delta=delta.get("text", ""))]
        if delta.get("type") == "input_json_delta":
            piece = delta.get("partial_json", "")
            state["text"] += piece
            if state["block"].get("name") not in self.custom:
                return [self._event("response.function_call_arguments.delta", item_id=state["id"],
                                    output_index=state["n"], delta=piece)]
        if delta.get("type") == "thinking_delta":
            state["text"] += delta.get("thinking", "")
        return []

    def _stop(self, index: Any) -> list[bytes]:
        state = self.open.pop(index, None)
        if state is None:
            return []
        n, ident = state["n"], state["id"]
        out = []
        if state["kind"] == "text":
            done = item({"type": "text", "text": state["text"]}, self.custom, ident)
            part = {"type": "output_text", "text": state["text"], "annotations": []}
            out += [self._event("response.output_text.done", item_id=ident, output_index=n, content_index=0,
                                text=state["text"]),
                    self._event("response.content_part.done", item_id=ident, output_index=n, content_index=0,
                                part=part)]
        elif state["kind"] == "tool_use":
            done = item({**state["block"], "input": parse_args(state["text"] or "{}")}, self.custom, ident)
            if done and done["type"] == "function_call":
                out.append(self._event("response.function_call_arguments.done", item_id=ident, output_index=n,
                                       arguments=done["arguments"]))
        else:
            done = item({"type": "thinking", "thinking": state["text"]}, self.custom, ident)
        assert done is not None
        self.output.append(done)
        return out + [self._event("response.output_item.done", output_index=n, item=done)]

    def close(self) -> list[bytes]:
        if self.failed is not None:
            failed = response(self.id, self.model, self.output, "failed", self.usage)
            failed["error"] = {"code": self.failed.get("type", "api_error"), "message": self.failed.get("message", "")}
            return [self._event("response.failed", response=failed)]
        status = "incomplete" if self.stop == "max_tokens" else "completed"
        return [self._event(f"response.{status}", response=response(self.id, self.model, self.output, status,
                                                                     self.usage))]


class ResponsesDoor:
    """``/v1/responses``."""

    def __init__(self) -> None:
        self.model = ""
        self.custom: set[str] = set()

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        self.model = str(body.get("model", ""))
        out, self.custom = to_messages(body)
        return out

    def response(self, message: dict[str, Any]) -> dict[str, Any]:
        output = [i for i in (item(b, self.custom, f"it_{os.urandom(8).hex()}") for b in message.get("content", []))
                  if i is not None]
        status = "incomplete" if message.get("stop_reason") == "max_tokens" else "completed"
        return response("resp_" + str(message.get("id", ""))[4:], self.model or message.get("model", ""), output,
                        status, message.get("usage") or {})

    def error(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        return {"error": {"message": error.get("message", ""), "type": error.get("type", "api_error"),
                          "param": None, "code": error.get("type", "api_error")}}

    def stream(self) -> ResponsesStream:
        return ResponsesStream(self.model, self.custom)
