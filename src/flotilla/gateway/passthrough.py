"""The gateway's fast path to Anthropic-format backends: the request relayed, the answer relayed.

An Anthropic backend gets the request as the client sent it (its JSON body with
only ``model`` and ``stream`` set, so block types and fields we do not model
pass verbatim; ``anthropic-beta`` and ``anthropic-version`` passed on), and the
client gets the backend's bytes as they come; the gateway reads only the usage
out of them and puts its own ``msg_…`` id in place of the backend's.
``count_tokens`` stays with the SDK adapter.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from ..messages import MessagesRequest, MessagesResponse, stream_event_adapter
from ..models.provider_errors import KINDS, retry_after
from .errors import scrub
from .http import Response, Upstream
from .relay import Relay, Tally


class PassThrough(Upstream):
    """An Anthropic Messages backend reached through the gateway's own keep-alive pool."""

    def __init__(self, adapter: Any, base_url: str, api_key: str | None, headers: dict[str, str]) -> None:
        super().__init__(adapter, base_url)  # the AnthropicModel, for count_tokens
        self.headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", **headers}
        if api_key:
            self.headers["x-api-key"] = api_key

    async def _post(self, request: MessagesRequest, stream: bool, headers: dict[str, str] | None,
                    given: dict[str, Any] | None = None) -> Response:
        body = dict(given) if given is not None else request.model_dump(mode="json", exclude_none=True)
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

    async def raw(self, request: MessagesRequest, relay: Relay) -> bytes:
        """The backend's JSON answer as it came (with our id), ``relay.tally`` filled in from it."""
        raw = await self._read(await self._post(request, False, relay.headers, relay.body))
        try:
            data = json.loads(raw)
            relay.tally.take(data.get("usage") or {})
        except (ValueError, AttributeError) as exc:
            raise self._fail(f"the answer is not a Messages response ({exc})", "malformed_response") from None
        relay.complete = True
        return _own_id(raw, data.get("id"), relay.message_id)

    async def request(self, request: MessagesRequest, *, headers: dict[str, str] | None = None) -> MessagesResponse:
        raw = await self._read(await self._post(request, False, headers))
        try:
            return MessagesResponse.model_validate_json(raw)
        except ValueError as exc:
            raise self._fail(f"the answer is not a Messages response ({exc})", "malformed_response") from None

    async def sse(self, request: MessagesRequest, relay: Relay) -> AsyncIterator[bytes]:
        """The backend's SSE bytes as they come (one block per network read); usage read on the way."""
        response = await self._post(request, True, relay.headers, relay.body)
        data = response.chunks()
        tally = relay.tally
        pending = b""
        try:
            async for block in data:
                pending += block
                while True:
                    end = pending.find(b"\n\n")
                    if end < 0:
                        break
                    event, pending = pending[:end], pending[end + 2:]
                    found = _account(event, tally)
                    if found is _STOP:
                        relay.complete = True
                    elif found is not None:  # message_start: its id, to replace with ours
                        block = _own_id(block, found, relay.message_id)
                if b"event: error" in block:  # an upstream error event may echo a key
                    block = scrub(block.decode(errors="replace")).encode()
                yield block
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise self._fail(f"the stream was cut: {type(exc).__name__}", "connection_error") from None
        finally:
            await data.aclose()
        if not relay.complete:
            raise self._fail("the stream ended before message_stop", "connection_error")

    async def stream(self, request: MessagesRequest, *,
                     headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
        """Canonical stream events (for callers other than the relay)."""
        pending = b""
        async for block in self.sse(request, Relay(message_id="", headers=headers)):
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


_STOP = object()


def _account(event: bytes, tally: Tally) -> Any:
    """Folds the usage an SSE event carries into ``tally`` and counts content deltas; returns
    ``_STOP`` for ``message_stop``, the message id for ``message_start``, else None."""
    head = event[:48]
    if b"content_block_delta" in head:
        tally.deltas += 1
        at = event.rfind(b'":') + 2  # the delta's last field is its text: count from its quote to `"}}`
        tally.chars += max(0, len(event) - at - 4 - (event[at:at + 1] == b" "))
        return None
    if b"message_stop" in head:
        return _STOP
    start = b"message_start" in head
    if not start and b"message_delta" not in head:
        return None
    for line in event.replace(b"\r", b"").split(b"\n"):
        if line.startswith(b"data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                return None
            message = data.get("message") or {}
            tally.take(message.get("usage") if start else data.get("usage"))
            return message.get("id") if start else None
    return None


def _own_id(raw: bytes, theirs: Any, ours: str) -> bytes:
    """``raw`` with the backend's message id (its first occurrence) replaced by ours."""
    if not ours or not isinstance(theirs, str) or not theirs:
        return raw
    return raw.replace(json.dumps(theirs).encode(), json.dumps(ours).encode(), 1)
