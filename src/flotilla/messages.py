"""The canonical message model: the Anthropic Messages API's shape, typed.

Every adapter translates its wire format to and from these classes. Unknown
fields are kept (``extra="allow"``) so that a request can travel through
flotilla to an Anthropic backend without losing what we do not model
(``context_management``, ``output_config``, ``cache_control`` …).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict, without unset optional fields."""
        return self.model_dump(mode="json", exclude_none=True)


# -- content blocks ---------------------------------------------------------


class TextBlock(_Wire):
    type: Literal["text"] = "text"
    text: str


class ImageBlock(_Wire):
    type: Literal["image"] = "image"
    source: dict[str, Any]
    """``{"type": "base64", "media_type": …, "data": …}`` or ``{"type": "url", "url": …}``."""


class ToolUseBlock(_Wire):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class DocumentBlock(_Wire):
    """A document: ``source`` is ``{"type": "text", "data": …}``, ``base64``/``url`` (a PDF) or ``content``."""

    type: Literal["document"] = "document"
    source: dict[str, Any]
    title: str | None = None
    context: str | None = None

    def plain_text(self) -> str | None:
        """The document's text when it is text (a text source or a list of text blocks), else None."""
        kind = self.source.get("type")
        if kind == "text":
            return str(self.source.get("data", ""))
        if kind == "content":
            content = self.source.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict)
                             and b.get("type") == "text")
        return None


class SearchResultBlock(_Wire):
    type: Literal["search_result"] = "search_result"
    source: str
    title: str = ""
    content: list[TextBlock] = Field(default_factory=list)


class OtherBlock(_Wire):
    """Any other block type of the Messages API (``server_tool_use``, ``web_search_tool_result``,
    ``container_upload``, ``tool_reference``, MCP and code-execution blocks, and types newer than
    this module): kept verbatim, so it reaches an Anthropic backend as the client sent it."""

    type: str


class ToolResultBlock(_Wire):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[ContentBlock] = ""
    is_error: bool | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


class ThinkingBlock(_Wire):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(_Wire):
    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


_TYPED = {"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document", "search_result"}


def _block_tag(value: Any) -> str:
    """The union member for a block: its ``type`` when modelled, else ``other`` (kept as it came)."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in _TYPED else "other"


ContentBlock = Annotated[
    Union[Annotated[TextBlock, Tag("text")], Annotated[ImageBlock, Tag("image")],
          Annotated[ToolUseBlock, Tag("tool_use")], Annotated["ToolResultBlock", Tag("tool_result")],
          Annotated[ThinkingBlock, Tag("thinking")], Annotated[RedactedThinkingBlock, Tag("redacted_thinking")],
          Annotated[DocumentBlock, Tag("document")], Annotated[SearchResultBlock, Tag("search_result")],
          Annotated[OtherBlock, Tag("other")]],
    Discriminator(_block_tag),
]
ToolResultBlock.model_rebuild()


class Message(_Wire):
    role: Literal["user", "assistant", "system"]
    """``system`` inside ``messages`` is what Claude Code sends mid-conversation."""
    content: str | list[ContentBlock]

    def blocks(self) -> list[Any]:
        """The content as a list of blocks (a plain string becomes one text block)."""
        if isinstance(self.content, str):
            return [TextBlock(text=self.content)]
        return list(self.content)

    def text(self) -> str:
        return "".join(b.text for b in self.blocks() if isinstance(b, TextBlock))


# -- request ----------------------------------------------------------------


class ToolSpec(_Wire):
    """A tool offered to the model. Server tools (``web_search_…``) carry a ``type`` and no schema."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class MessagesRequest(_Wire):
    model: str
    messages: list[Message]
    max_tokens: int = 4096
    system: str | list[TextBlock] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None

    def system_text(self) -> str:
        if self.system is None:
            return ""
        if isinstance(self.system, str):
            return self.system
        return "\n".join(b.text for b in self.system)

    def thinking_enabled(self) -> bool:
        return bool(self.thinking) and self.thinking.get("type") in ("enabled", "adaptive")


# -- response ---------------------------------------------------------------

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class Usage(_Wire):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
        )


class MessagesResponse(_Wire):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage = Field(default_factory=Usage)

    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.content if isinstance(b, ToolUseBlock)]


# -- stream events (Anthropic's SSE event types) ----------------------------


class MessageStart(_Wire):
    type: Literal["message_start"] = "message_start"
    message: MessagesResponse


class ContentBlockStart(_Wire):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: ContentBlock


class ContentBlockDelta(_Wire):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: dict[str, Any]
    """``text_delta`` / ``input_json_delta`` / ``thinking_delta`` / ``signature_delta``."""


class ContentBlockStop(_Wire):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class MessageDelta(_Wire):
    type: Literal["message_delta"] = "message_delta"
    delta: dict[str, Any]
    usage: Usage = Field(default_factory=Usage)


class MessageStop(_Wire):
    type: Literal["message_stop"] = "message_stop"


class Ping(_Wire):
    type: Literal["ping"] = "ping"


StreamEvent = Annotated[
    Union[MessageStart, ContentBlockStart, ContentBlockDelta, ContentBlockStop, MessageDelta, MessageStop, Ping],
    Field(discriminator="type"),
]
stream_event_adapter: TypeAdapter[Any] = TypeAdapter(StreamEvent)


def response_to_events(response: MessagesResponse) -> list[Any]:
    """A finished response as the stream events that would have carried it."""
    head = response.model_copy(update={"content": [], "stop_reason": None,
                                       "usage": Usage(input_tokens=response.usage.input_tokens,
                                                      cache_read_input_tokens=response.usage.cache_read_input_tokens,
                                                      cache_creation_input_tokens=response.usage.cache_creation_input_tokens)})
    events: list[Any] = [MessageStart(message=head)]
    for i, block in enumerate(response.content):
        if isinstance(block, TextBlock):
            events.append(ContentBlockStart(index=i, content_block=TextBlock(text="")))
            events.append(ContentBlockDelta(index=i, delta={"type": "text_delta", "text": block.text}))
        elif isinstance(block, ToolUseBlock):
            events.append(ContentBlockStart(index=i, content_block=block.model_copy(update={"input": {}})))
            events.append(ContentBlockDelta(index=i, delta={"type": "input_json_delta",
                                                             "partial_json": json.dumps(block.input)}))
        elif isinstance(block, ThinkingBlock):
            events.append(ContentBlockStart(index=i, content_block=ThinkingBlock(thinking="")))
            events.append(ContentBlockDelta(index=i, delta={"type": "thinking_delta", "thinking": block.thinking}))
            if block.signature:
                events.append(ContentBlockDelta(index=i, delta={"type": "signature_delta",
                                                                 "signature": block.signature}))
        else:
            events.append(ContentBlockStart(index=i, content_block=block))
        events.append(ContentBlockStop(index=i))
    events.append(MessageDelta(delta={"stop_reason": response.stop_reason, "stop_sequence": response.stop_sequence},
                               usage=Usage(output_tokens=response.usage.output_tokens)))
    events.append(MessageStop())
    return events


class StreamAccumulator:
    """Folds stream events back into the ``MessagesResponse`` they carry."""

    def __init__(self) -> None:
        self.response: MessagesResponse | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, str] = {}

    def add(self, event: Any) -> None:
        if isinstance(event, MessageStart):
            self.response = event.message.model_copy(deep=True)
        elif isinstance(event, ContentBlockStart):
            self._blocks[event.index] = event.content_block.model_dump(mode="json", exclude_none=True)
        elif isinstance(event, ContentBlockDelta):
            block, d = self._blocks[event.index], event.delta
            kind = d.get("type")
            if kind == "text_delta":
                block["text"] = block.get("text", "") + d["text"]
            elif kind == "input_json_delta":
                self._json[event.index] = self._json.get(event.index, "") + d["partial_json"]
            elif kind == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d["thinking"]
            elif kind == "signature_delta":
                block["signature"] = d["signature"]
        elif isinstance(event, MessageDelta):
            assert self.response is not None, "message_delta before message_start"
            self.response.stop_reason = event.delta.get("stop_reason")
            self.response.stop_sequence = event.delta.get("stop_sequence")
            u = self.response.usage
            # Anthropic sends cumulative output tokens; input counts may be refined at the end.
            u.output_tokens = event.usage.output_tokens or u.output_tokens
            u.input_tokens = event.usage.input_tokens or u.input_tokens
            u.cache_read_input_tokens = event.usage.cache_read_input_tokens or u.cache_read_input_tokens
            u.cache_creation_input_tokens = (event.usage.cache_creation_input_tokens
                                             or u.cache_creation_input_tokens)

    def result(self) -> MessagesResponse:
        if self.response is None:
            raise ValueError("the stream ended before message_start")
        for index, partial in self._json.items():
            self._blocks[index]["input"] = json.loads(partial) if partial.strip() else {}
        adapter: TypeAdapter[Any] = TypeAdapter(ContentBlock)
        self.response.content = [adapter.validate_python(self._blocks[i]) for i in sorted(self._blocks)]
        return self.response


def estimate_tokens(request: MessagesRequest) -> int:
    """A local estimate of a request's input tokens (about four characters a token)."""
    size = len(request.system_text())
    for message in request.messages:
        size += len(message.model_dump_json(include={"content"}))
    for tool in request.tools or []:
        size += len(tool.model_dump_json())
    return max(1, size // 4)
