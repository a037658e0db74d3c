"""The gateway's fast path to OpenAI-compatible backends: the adapter's translation, its own HTTP.

``LeanChat`` has the ``Model`` shape. It reuses the OpenAI adapter's pure
translation (``chat_body``, ``from_chat_response``, ``ChatStreamTranslator``) and
replaces only the transport: the SDK's per-call overhead was most of the
gateway's added latency (see bench/gateway.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ProviderError
from ..messages import MessagesRequest, MessagesResponse, estimate_tokens
from ..models.chat import ChatStreamTranslator, from_chat_response
from ..models.provider_errors import KINDS, retry_after
from .http import Response, Upstream
from .relay import Relay, Tally, count_delta


class LeanChat(Upstream):
    """An OpenAI-compatible backend, reached through the gateway's own keep-alive pool."""

    def __init__(self, adapter: Any, base_url: str, api_key: str | None, headers: dict[str, str]) -> None:
        super().__init__(adapter, base_url)  # the OpenAIModel whose translation settings we share
        self.headers = {"content-type": "application/json", "accept": "application/json", **headers}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"

    async def _post(self, body: dict[str, Any]) -> Response:
        response = await self._send("/chat/completions", json.dumps(body).encode(), self.headers)
        if response.status >= 400:
            raw = await self._read(response)
            raise self._status_error(response, raw)
        return response

    def _status_error(self, response: Response, raw: bytes) -> ProviderError:
        message = raw.decode(errors="replace")[:500]
        try:
            error = json.loads(raw).get("error")
            if isinstance(error, dict):
                message = str(error.get("message") or message)
            elif isinstance(error, str):
                message = error
        except (ValueError, AttributeError):
            pass
        status = response.status
        return self._fail(message, KINDS.get(status, "api_error"), status, retry_after(response.headers))

    async def request(self, request: MessagesRequest, *, headers: dict[str, str] | None = None,
                      relay: Relay | None = None) -> MessagesResponse:
        """One call, answered whole."""
        body = self.adapter.chat_body(request, relay.warnings if relay else None)
        body.pop("stream", None)
        response = await self._post(body)
        raw = await self._read(response)
        try:
            data = json.loads(raw)
        except ValueError:
            raise self._fail("the answer is not valid JSON", "malformed_response") from None
        if not isinstance(data, dict) or not data.get("choices"):
            raise self._fail(f"the answer has no choices: {raw[:200]!r}", "malformed_response")
        return from_chat_response(data, model=self.model, message_id=relay.message_id if relay else None)

    async def _chunks(self, request: MessagesRequest, warnings: list[str] | None = None
                      ) -> AsyncIterator[list[dict[str, Any]]]:
        """The upstream's ``chat.completion.chunk`` bodies, in batches (one per network read)."""
        body = self.adapter.chat_body(request, warnings)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        response = await self._post(body)
        pending = b""
        data = response.chunks()
        try:
            async for piece in data:
                pending += piece
                if b"\r" in pending:
                    pending = pending.replace(b"\r\n", b"\n")
                batch = []
                while True:
                    end = pending.find(b"\n\n")
                    if end < 0:
                        break
                    event, pending = pending[:end], pending[end + 2:]
                    for line in event.split(b"\n"):
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            continue
                        chunk = json.loads(payload)
                        if isinstance(chunk, dict) and chunk.get("error"):
                            raise self._stream_error(chunk["error"])
                        batch.append(chunk)
                if batch:
                    yield batch
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise self._fail(f"the stream was cut: {type(exc).__name__}", "connection_error") from None
        except ValueError:
            raise self._fail("a stream chunk is not valid JSON", "malformed_response") from None
        finally:
            await data.aclose()

    async def stream(self, request: MessagesRequest, *,
                     headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
        """One call, its SSE chunks re-assembled into canonical stream events."""
        translator = ChatStreamTranslator(self.model)
        batches = self._chunks(request)
        try:
            async for batch in batches:
                for chunk in batch:
                    for event in translator.feed(chunk):
                        yield event
        finally:
            await batches.aclose()
        if not translator.complete:
            raise self._fail("the stream ended before a finish reason", "connection_error")
        for event in translator.finish():
            yield event

    async def sse(self, request: MessagesRequest, relay: Relay) -> AsyncIterator[bytes]:
        """The same stream as Anthropic SSE bytes, one block per network read, ``relay.tally`` filled in.

        Text deltas (nearly every chunk) are written straight to bytes; everything
        else goes through the adapter's translator and the canonical events.
        """
        translator = ChatStreamTranslator(self.model, message_id=relay.message_id)
        tally = relay.tally
        deltas = chars = 0  # the shortcut's text deltas, counted here and added to the tally at the end
        text_index = -1  # the index of the open text block, when the last event was a text delta
        batches = self._chunks(request, relay.warnings)
        try:
            async for batch in batches:
                out: list[bytes] = []
                for chunk in batch:
                    text = _pure_text(chunk) if text_index >= 0 else None
                    if text is not None:
                        deltas += 1
                        chars += len(text)
                        out.append(_TEXT_DELTA % (text_index, json.dumps(text, ensure_ascii=False).encode()))
                        continue
                    for event in translator.feed(chunk):
                        out.append(_encode(event, tally))
                        # Open for the shortcut only while the last event is a text delta.
                        is_text = event.type == "content_block_delta" and event.delta.get("type") == "text_delta"
                        text_index = event.index if is_text else -1
                if out:
                    yield b"".join(out)
        finally:
            tally.deltas += deltas
            tally.chars += chars
            await batches.aclose()
        if not translator.complete:
            raise self._fail("the stream ended before a finish reason", "connection_error")
        relay.complete = True
        yield b"".join(_encode(event, tally) for event in translator.finish())

    def _stream_error(self, error: Any) -> ProviderError:
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        code = error.get("code") if isinstance(error, dict) else None
        status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else 500
        return self._fail(str(message), KINDS.get(status, "api_error"), status)

    async def count_tokens(self, request: MessagesRequest) -> int:
        return estimate_tokens(request)


_TEXT_DELTA = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
               b'"delta":{"type":"text_delta","text":%s}}\n\n')


def _pure_text(chunk: dict[str, Any]) -> str | None:
    """The text of a chunk that carries nothing but more text for the open block, else None."""
    if chunk.get("usage"):
        return None
    choices = chunk.get("choices")
    if not choices or len(choices) != 1:
        return None
    choice = choices[0]
    if choice.get("finish_reason"):
        return None
    delta = choice.get("delta") or {}
    text = delta.get("content")
    if not text or not isinstance(text, str) or any(k not in ("content", "role") for k in delta):
        return None
    return text


def encode_event(event: Any) -> bytes:
    """One canonical stream event as Anthropic SSE bytes."""
    return b"event: " + event.type.encode() + b"\ndata: " + event.model_dump_json(exclude_none=True).encode() + b"\n\n"


def _encode(event: Any, tally: Tally) -> bytes:
    kind = event.type
    if kind == "content_block_delta":
        count_delta(tally, event.delta)
    elif kind == "message_start":
        tally.take(event.message.usage)
    elif kind == "message_delta":
        tally.take(event.usage)
    return encode_event(event)
