"""Canonical messages ⇄ OpenAI Chat Completions, as pure functions.

Public: the OpenAI adapter and the gateway's fast path both translate with them.

- ``to_chat_request``: a canonical request → a Chat Completions body (dict)
- ``from_chat_response``: a ``chat.completion`` body → a canonical response
- ``ChatStreamTranslator``: ``chat.completion.chunk`` bodies → canonical stream events

What Chat Completions cannot carry is dropped on the way out: ``cache_control``,
thinking blocks of earlier turns, server tools. Tool results become ``tool``
messages; images a tool returned follow in a user message, since only user
messages may carry images. Text documents and search results become text, a PDF
a ``file`` part where the backend takes files; what has no counterpart
(``server_tool_use``, ``top_k``, stop sequences past four …) is named in the
``warnings`` list a caller may pass, so the gateway can say so in a header.
"""

from __future__ import annotations

import json
from typing import Any

from ..messages import (
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    DocumentBlock,
    ImageBlock,
    MessageDelta,
    MessagesRequest,
    MessagesResponse,
    MessageStart,
    MessageStop,
    RedactedThinkingBlock,
    SearchResultBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

__all__ = ["ChatStreamTranslator", "clean_gemini_schema", "from_chat_response", "image_part", "parse_arguments",
           "reasoning_effort", "to_chat_request", "usage_from_chat"]

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}

# JSON Schema keywords Gemini's function declarations reject with 400 INVALID_ARGUMENT.
GEMINI_DROPPED_KEYWORDS = frozenset({
    "$schema", "$id", "$comment", "additionalProperties", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "uniqueItems", "patternProperties", "propertyNames", "const", "examples", "contentEncoding",
    "contentMediaType", "unevaluatedProperties", "dependentRequired", "dependentSchemas", "if", "then", "else",
    "not", "strict",
})
_GEMINI_STRING_FORMATS = {"enum", "date-time"}
MAX_STOP_SEQUENCES = 4
"""Chat Completions takes at most four stop sequences (api.openai.com refuses more)."""
_SILENT = (ThinkingBlock, RedactedThinkingBlock)  # earlier turns' thinking: documented above, no warning


def to_chat_request(request: MessagesRequest | dict[str, Any], *, model: str, gemini: bool = False,
                    max_tokens_field: str = "max_tokens", files: bool = False,
                    warnings: list[str] | None = None) -> dict[str, Any]:
    """The Chat Completions body for a canonical request (or its JSON dict); ``model`` is the provider's own id.

    ``files``: the backend takes ``file`` parts (PDFs); ``warnings`` collects what was dropped.
    """
    if isinstance(request, dict):
        request = MessagesRequest.model_validate(request)
    dropped: dict[str, int] = {}
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system_text()})
    for message in request.messages:
        messages += _messages(message, files, dropped)
    body: dict[str, Any] = {"model": model, "messages": messages, max_tokens_field: request.max_tokens}
    notes = [f"{kind} blocks ({n})" for kind, n in dropped.items()]
    tools = [_tool(t, gemini) for t in request.tools or [] if t.input_schema is not None or not t.type]
    if tools:
        body["tools"] = tools
        choice = _tool_choice(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
        if (request.tool_choice or {}).get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("stop_sequences", "stop")):
        value = getattr(request, ours)
        if value is not None:
            body[theirs] = value
    if len(body.get("stop") or ()) > MAX_STOP_SEQUENCES:
        notes.append(f"stop_sequences past the first {MAX_STOP_SEQUENCES} ({len(body['stop'])} sent)")
        body["stop"] = body["stop"][:MAX_STOP_SEQUENCES]
    if request.top_k is not None:
        notes.append("top_k (Chat Completions has none)")
    user = (request.metadata or {}).get("user_id")
    if isinstance(user, str) and user:
        body["user"] = user
    effort = reasoning_effort(request.thinking)
    if effort:
        body["reasoning_effort"] = effort
    if warnings is not None:
        warnings += notes
    return body


def reasoning_effort(thinking: dict[str, Any] | None) -> str | None:
    """Anthropic's thinking budget as an OpenAI ``reasoning_effort`` (None when thinking is off)."""
    if not thinking or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    if "effort" in thinking:
        return str(thinking["effort"])
    budget = thinking.get("budget_tokens")
    if budget is None:
        return "medium"
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def _drop(dropped: dict[str, int], block: Any) -> None:
    if not isinstance(block, _SILENT):
        dropped[block.type] = dropped.get(block.type, 0) + 1


def _part(block: Any, files: bool) -> dict[str, Any] | None:
    """A user content block as a Chat content part, or None when it has no counterpart."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        return image_part(block)
    if isinstance(block, DocumentBlock):
        text = block.plain_text()
        if text is not None:
            return {"type": "text", "text": f"{block.title}\n\n{text}" if block.title else text}
        source = block.source
        if files and source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'application/pdf')};base64,{source.get('data', '')}"
            return {"type": "file", "file": {"filename": block.title or "document.pdf", "file_data": url}}
        return None
    if isinstance(block, SearchResultBlock):
        head = f"{block.title} ({block.source})" if block.title else block.source
        return {"type": "text", "text": head + "\n" + "\n".join(b.text for b in block.content)}
    return None


def _messages(message: Any, files: bool, dropped: dict[str, int]) -> list[dict[str, Any]]:
    if message.role == "system":
        return [{"role": "system", "content": message.text()}]
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    if message.role == "assistant":
        return [_assistant(message.content, dropped)]
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            tool_messages.append(_tool_result(block, tool_images, files, dropped))
            continue
        part = _part(block, files)
        if part is None:
            _drop(dropped, block)
        else:
            parts.append(part)
    out = list(tool_messages)
    if tool_images:
        parts = [{"type": "text", "text": "The images returned by the tool call(s) above:"},
                 *tool_images, *parts]
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        content: Any = "\n".join(p["text"] for p in parts) if only_text else parts
        out.append({"role": "user", "content": content})
    return out


def _assistant(blocks: list[Any], dropped: dict[str, int]) -> dict[str, Any]:
    for b in blocks:
        if not isinstance(b, (TextBlock, ToolUseBlock)):
            _drop(dropped, b)
    text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
    calls = [{"id": b.id, "type": "function", "function": {"name": b.name, "arguments": json.dumps(b.input)}}
             for b in blocks if isinstance(b, ToolUseBlock)]
    out: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        out["tool_calls"] = calls
    return out


def _tool_result(block: ToolResultBlock, images: list[dict[str, Any]], files: bool,
                 dropped: dict[str, int]) -> dict[str, Any]:
    if isinstance(block.content, str):
        text = block.content
    else:
        texts = []
        for b in block.content:
            part = _part(b, files)
            if part is None:
                _drop(dropped, b)
            elif part["type"] == "text":
                texts.append(part["text"])
            else:  # images and files: only user messages carry them
                images.append(part)
        text = ("" if all(isinstance(b, TextBlock) for b in block.content) else "\n").join(texts)
    if block.is_error:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def image_part(block: ImageBlock) -> dict[str, Any]:
    """An image block as a Chat ``image_url`` part (base64 becomes a data URL)."""
    source = block.source
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
    else:
        url = source.get("url", "")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool(tool: Any, gemini: bool) -> dict[str, Any]:
    schema = tool.input_schema or {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": tool.name, "parameters": clean_gemini_schema(schema) if gemini else schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any] | None) -> Any:
    kind = (choice or {}).get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}  # type: ignore[index]
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind or "")


def clean_gemini_schema(schema: Any) -> Any:
    """A JSON schema without the keywords Gemini rejects (exclusive bounds become inclusive ones)."""
    if isinstance(schema, list):
        return [clean_gemini_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            step = 1 if schema.get("type") == "integer" else 0
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out.setdefault(bound, value + step if bound == "minimum" else value - step)
        elif key == "format" and schema.get("type") == "string" and value not in _GEMINI_STRING_FORMATS:
            continue
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: clean_gemini_schema(sub) for name, sub in value.items()}
        elif key not in GEMINI_DROPPED_KEYWORDS:
            out[key] = clean_gemini_schema(value)
    return out


# -- answers ------------------------------------------------------------------


def usage_from_chat(usage: dict[str, Any] | None) -> Usage:
    """Chat usage → canonical; cached prompt tokens move from input to cache reads."""
    if not usage:
        return Usage()
    cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    return Usage(input_tokens=max(0, prompt - cached), output_tokens=int(usage.get("completion_tokens") or 0),
                 cache_read_input_tokens=cached)


def _reasoning(source: dict[str, Any]) -> str | None:
    value = source.get("reasoning_content") or source.get("reasoning")
    return value if isinstance(value, str) and value else None


def parse_arguments(arguments: str | None) -> dict[str, Any]:
    """Tool-call arguments as a dict; text that is not a JSON object is kept under ``_raw``."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def from_chat_response(body: dict[str, Any], *, model: str | None = None,
                       message_id: str | None = None) -> MessagesResponse:
    """A ``chat.completion`` body as a canonical response (``message_id`` instead of the upstream's id)."""
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[Any] = []
    thinking = _reasoning(message)
    if thinking:
        content.append(ThinkingBlock(thinking=thinking))
    if message.get("content"):
        content.append(TextBlock(text=message["content"]))
    elif message.get("refusal"):
        content.append(TextBlock(text=message["refusal"]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(ToolUseBlock(id=call.get("id") or f"call_{len(content)}", name=function.get("name", ""),
                                    input=parse_arguments(function.get("arguments"))))
    finish = choice.get("finish_reason")
    stop = STOP_REASONS.get(finish or "", "end_turn")
    if content and isinstance(content[-1], ToolUseBlock) and stop == "end_turn":
        stop = "tool_use"  # some servers say "stop" after tool calls
    return MessagesResponse(id=message_id or body.get("id") or "chatcmpl", model=model or body.get("model", ""),
                            content=content, stop_reason=stop, usage=usage_from_chat(body.get("usage")))


class ChatStreamTranslator:
    """Turns ``chat.completion.chunk`` bodies into canonical stream events, one block open at a time.

    Anthropic's protocol sends each block whole (start, deltas, stop) before the next; some
    servers interleave parallel tool calls' argument chunks. A tool call that appears while
    another one's arguments are not yet a complete JSON value is held back, with its
    arguments, until that one is complete (or the stream ends), then sent in order.
    ``message_id`` replaces the upstream's id (some local servers repeat theirs).
    """

    def __init__(self, model: str, *, message_id: str | None = None) -> None:
        self.model = model
        self.message_id = message_id
        self.started = False
        self._index = -1
        self._open: str | None = None  # "text", "thinking" or "tool"
        self._live: int | None = None  # the tool position whose block is open
        self._args: dict[int, str] = {}  # the open tool's arguments so far
        self._held: dict[int, tuple[ToolUseBlock, list[str]]] = {}  # held-back tool calls, in arrival order
        self._seen: set[int] = set()
        self._tools = 0
        self._finish: str | None = None
        self._usage = Usage()

    def _start(self, kind: str, block: Any) -> list[Any]:
        events = self._close()
        self._index += 1
        self._open = kind
        return [*events, ContentBlockStart(index=self._index, content_block=block)]

    def _close(self) -> list[Any]:
        """Closes the open block, then sends every held-back tool call whole."""
        if self._open is None:
            return []
        events: list[Any] = [ContentBlockStop(index=self._index)]
        for position, (block, pieces) in self._held.items():
            events += self._open_tool(position, block, "".join(pieces))
            events.append(ContentBlockStop(index=self._index))
        self._held.clear()
        self._open = self._live = None
        return events

    def _open_tool(self, position: int, block: ToolUseBlock, arguments: str) -> list[Any]:
        self._index += 1
        self._open, self._live = "tool", position
        self._args[position] = arguments
        events: list[Any] = [ContentBlockStart(index=self._index, content_block=block)]
        if arguments:
            events.append(self._args_delta(arguments))
        return events

    def _advance(self) -> list[Any]:
        """The open tool call is complete: close it and let the held-back calls out, in order,
        up to the first whose arguments are still being written (it stays open)."""
        events: list[Any] = [ContentBlockStop(index=self._index)]
        self._open = self._live = None
        while self._held:
            position = next(iter(self._held))
            block, pieces = self._held.pop(position)
            events += self._open_tool(position, block, "".join(pieces))
            if not _complete_json(self._args[position]) or not self._held:
                break
            events.append(ContentBlockStop(index=self._index))
            self._open = self._live = None
        return events

    def _args_delta(self, piece: str) -> Any:
        return ContentBlockDelta(index=self._index, delta={"type": "input_json_delta", "partial_json": piece})

    def feed(self, chunk: dict[str, Any]) -> list[Any]:
        """The events one chunk carries (possibly none)."""
        events: list[Any] = []
        if not self.started:
            self.started = True
            head = MessagesResponse(id=self.message_id or chunk.get("id") or "chatcmpl", model=self.model)
            events.append(MessageStart(message=head))
        if chunk.get("usage"):
            self._usage = usage_from_chat(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            thinking = _reasoning(delta)
            if thinking:
                if self._open != "thinking":
                    events += self._start("thinking", ThinkingBlock(thinking=""))
                events.append(ContentBlockDelta(index=self._index,
                                                delta={"type": "thinking_delta", "thinking": thinking}))
            if delta.get("content"):
                if self._open != "text":
                    events += self._start("text", TextBlock(text=""))
                events.append(ContentBlockDelta(index=self._index,
                                                delta={"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _tool_delta(self, call: dict[str, Any]) -> list[Any]:
        position = int(call.get("index", self._tools))
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        if position == self._live:
            self._args[position] += arguments
            events = [self._args_delta(arguments)] if arguments else []
            if self._held and _complete_json(self._args[position]):
                events += self._advance()
            return events
        if position in self._held:
            self._held[position][1].append(arguments)
            return []
        if position in self._seen:
            return []  # more for a call already closed: it was whole JSON, nowhere valid to put it
        self._seen.add(position)
        self._tools += 1
        block = ToolUseBlock(id=call.get("id") or f"call_{position}", name=function.get("name") or "")
        if self._held or (self._live is not None and not _complete_json(self._args[self._live])):
            self._held[position] = (block, [arguments])  # interleaved: wait for the open call
            return []
        return self._close() + self._open_tool(position, block, arguments)

    @property
    def complete(self) -> bool:
        """Whether a finish reason arrived (a stream without one was cut short)."""
        return self._finish is not None

    def finish(self) -> list[Any]:
        """The closing events, once the chunks have ended."""
        events = self._close()
        if not self.started:
            events.append(MessageStart(message=MessagesResponse(id=self.message_id or "chatcmpl", model=self.model)))
        stop = STOP_REASONS.get(self._finish or "", "end_turn")
        if self._tools and stop == "end_turn":
            stop = "tool_use"
        events.append(MessageDelta(delta={"stop_reason": stop, "stop_sequence": None}, usage=self._usage))
        events.append(MessageStop())
        return events


def _complete_json(text: str) -> bool:
    """Whether tool arguments so far form a whole JSON value (so no more can follow)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
