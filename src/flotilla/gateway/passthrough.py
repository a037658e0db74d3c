"""The gateway's fast path to Anthropic-format backends: the request relayed, the answer relayed.

An Anthropic backend gets the request as the client sent it (unknown fields
included, ``anthropic-beta`` and ``anthropic-version`` passed on), and the
client gets the backend's bytes as they come; the gateway reads only the
usage out of them. ``count_tokens`` stays with the SDK adapter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from ..messages import MessagesRequest, MessagesResponse, stream_event_adapter
from ..messages import Usage as TokenUsage
from ..models.provider_errors import KINDS, retry_after
from .http import Response, Upstream
from .lean import fold_usage


class PassThrough(Upstream):
    """An Anthropic Messages backend reached through the gateway's own keep-alive pool."""

    def __init__(self, adapter: Any, base_url: str, api_key: str | None, headers: dict[str, str]) -> None:
        super().__init__(adapter, base_url)  # the AnthropicModel, for count_tokens
        self.headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", **headers}
        if api_key:
            self.headers["x-api-key"] = api_key

    async def _post(self, request: MessagesRequest, stream: bool, headers: dict[str, str] | None) -> Response:
        body = request.model_dump(mode="json", exclude_none=True)
        body["model"], body["stream"] = self.model, stream
        response = await self._send("/v1/messages", json.dumps(body).encode(), {**self.headers, **(headers or {})})
        if response.status >= 400:
            raw = await self._read(response)
            message, kind = raw.decode(errors="replace")[:500], KINDS.get(response.status, "api_error")
            try:
                error = json.loads(raw)["error"]
                message, kind = str(error.get("message") or message), str(error.get("type") or kind)
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
            raise self._fail(message, kind, response.status, retry_after(response.headers))
        return response

    async def raw(self, request: MessagesRequest, usage: TokenUsage, *,
                  headers: dict[str, str] | None = None) -> bytes:
        """The backend's JSON answer as it came, ``usage`` filled in from it."""
        raw = await self._read(await self._post(request, False, headers))
        try:
            fold_usage(usage, TokenUsage.model_validate(json.loads(raw).get("usage") or {}))
        except (ValueError, AttributeError) as exc:
            raise self._fail(f"the answer is not a Messages response ({exc})", "malformed_response") from None
        return raw

    async def request(self, request: MessagesRequest, *, headers: dict[str, str] | None = None) -> MessagesResponse:
        raw = await self._read(await self._post(request, False, headers))
        try:
            return MessagesResponse.model_validate_json(raw)
        except ValueError as exc:
            raise self._fail(f"the answer is not a Messages response ({exc})", "malformed_response") from None

    async def sse(self, request: MessagesRequest, usage: TokenUsage, *,
                  headers: dict[str, str] | None = None) -> AsyncIterator[bytes]:
        """The backend's SSE bytes as they come (one block per network read); usage read on the way."""
        response = await self._post(request, True, headers)
        data = response.chunks()
        pending = b""
        ended = False
        try:
            async for block in data:
                pending += block
                while True:
                    end = pending.find(b"\n\n")
                    if end < 0:
                        break
                    event, pending = pending[:end], pending[end + 2:]
                    ended = ended or _account(event, usage)
                yield block
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise self._fail(f"the stream was cut: {type(exc).__name__}", "connection_error") from None
        finally:
            await data.aclose()
        if not ended:
            raise self._fail("the stream ended before message_stop", "connection_error")

    async def stream(self, request: MessagesRequest, *,
                     headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
        """Canonical stream events (for callers other than the relay)."""
        usage = TokenUsage()
        pending = b""
        async for block in self.sse(request, usage, headers=headers):
            pending += block.replace(b"\r\n", b"\n")
            while (end := pending.find(b"\n\n")) >= 0:
                event, pending = pending[:end], pending[end + 2:]
                for line in event.split(b"\n"):
                    if line.startswith(b"data:"):
                        try:
                            yield stream_event_adapter.validate_json(line[5:].strip())
                        except ValueError:
                            pass  # an event type we do not model

    async def count_tokens(self, request: MessagesRequest, *, headers: dict[str, str] | None = None) -> int:
        return await self.adapter.count_tokens(request, headers=headers)


def _account(event: bytes, usage: TokenUsage) -> bool:
    """Folds the usage an SSE event carries into ``usage``; True for ``message_stop``."""
    if b"message_stop" in event[:40]:
        return True
    if b"message_start" not in event[:40] and b"message_delta" not in event[:40]:
        return False
    for line in event.replace(b"\r", b"").split(b"\n"):
        if line.startswith(b"data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                return False
            found = (data.get("message") or {}).get("usage") if data.get("type") == "message_start" else data.get("usage")
            if found:
                fold_usage(usage, TokenUsage.model_validate(found))
    return False
