"""The Anthropic Messages adapter, on the official ``anthropic`` SDK.

The canonical messages already are the Anthropic shape, so translation is
small: the request is sent as it stands (unknown fields such as
``cache_control`` or ``context_management`` travel in ``extra_body``) and the
answer is read back into the canonical classes. Retries are the ``Retry``
wrapper's job, so the SDK's own are off.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
from pydantic import ValidationError

from ..errors import ProviderError
from ..messages import MessagesRequest, MessagesResponse, stream_event_adapter
from .provider_errors import stream_error, to_provider_error
from ._sse import sse_events

_EVENT_TYPES = frozenset({"message_start", "content_block_start", "content_block_delta", "content_block_stop",
                          "message_delta", "message_stop", "ping"})
# Fields the SDK's ``messages.create`` takes as keywords; everything else goes in ``extra_body``.
_SDK_FIELDS = ("system", "tools", "tool_choice", "thinking", "metadata", "temperature", "top_p", "top_k",
               "stop_sequences")


def to_anthropic_params(request: MessagesRequest, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(keyword arguments, extra_body)`` for ``messages.create``; ``model`` is the provider's own id."""
    body = request.wire()
    body.pop("stream", None)
    body["model"] = model
    params = {k: body.pop(k) for k in ("model", "messages", "max_tokens")}
    params.update({k: body.pop(k) for k in _SDK_FIELDS if k in body})
    return params, body


class AnthropicModel:
    """A model behind the Anthropic Messages API (or anything speaking it, such as the fake provider)."""

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 provider: str = "anthropic", headers: dict[str, str] | None = None,
                 timeout: float = 600.0) -> None:
        self.model, self.provider = model, provider
        self.name = f"{provider}:{model}"
        # An explicit timeout also stops the SDK refusing large max_tokens without streaming.
        self._client = anthropic.AsyncAnthropic(api_key=api_key or "unused", base_url=base_url, max_retries=0,
                                                timeout=timeout, default_headers=headers or None)

    def _error(self, exc: BaseException) -> Exception:
        return to_provider_error(exc, provider=self.provider, model=self.model)

    async def request(self, request: MessagesRequest, *, headers: dict[str, str] | None = None) -> MessagesResponse:
        """One call, answered whole."""
        params, extra = to_anthropic_params(request, self.model)
        try:
            raw = await self._client.messages.with_raw_response.create(
                **params, extra_body=extra or None, extra_headers=headers)
            data = raw.http_response.json()
        except Exception as exc:
            raise self._error(exc) from exc
        try:
            return MessagesResponse.model_validate(data)
        except ValidationError as exc:
            raise ProviderError(f"the response does not have the Messages shape: {exc}", provider=self.provider,
                                model=self.model, kind="malformed_response") from exc

    async def stream(self, request: MessagesRequest, *,
                     headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
        """One call, answered as canonical stream events (``ping`` included)."""
        params, extra = to_anthropic_params(request, self.model)
        finished = False
        try:
            async with self._client.messages.with_streaming_response.create(
                    **params, stream=True, extra_body=extra or None, extra_headers=headers) as response:
                async for name, data in sse_events(response.iter_lines()):
                    event = self._event(name, data)
                    if event is not None:
                        finished = finished or event.type == "message_stop"
                        yield event
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        if not finished:
            raise ProviderError("the stream ended before message_stop", provider=self.provider, model=self.model,
                                kind="connection_error")

    def _event(self, name: str | None, data: str) -> Any:
        """The canonical event for one SSE event; None for event types we do not model."""
        body = json.loads(data)
        if name == "error" or (isinstance(body, dict) and body.get("type") == "error"):
            raise stream_error(body, provider=self.provider, model=self.model)
        if not isinstance(body, dict) or body.get("type") not in _EVENT_TYPES:
            return None  # a newer event type: the canonical stream skips it
        try:
            return stream_event_adapter.validate_python(body)
        except ValidationError as exc:
            raise ProviderError(f"a {body.get('type')} event does not have the expected shape: {exc}",
                                provider=self.provider, model=self.model, kind="malformed_response") from exc

    async def count_tokens(self, request: MessagesRequest, *, headers: dict[str, str] | None = None) -> int:
        """The provider's own count of the request's input tokens."""
        params, extra = to_anthropic_params(request, self.model)
        params.pop("max_tokens")
        for key in ("metadata", "temperature", "top_p", "top_k", "stop_sequences"):
            params.pop(key, None)
        try:
            result = await self._client.messages.count_tokens(**params, extra_body=extra or None,
                                                              extra_headers=headers)
        except Exception as exc:
            raise self._error(exc) from exc
        return int(result.input_tokens)
