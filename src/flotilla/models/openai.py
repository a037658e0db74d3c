"""The OpenAI Chat Completions adapter, on the official ``openai`` SDK, against any compatible base URL.

OpenAI, OpenRouter, Gemini's OpenAI endpoint, vLLM, Ollama and LM Studio all
speak it. Translation lives in ``chat`` as pure functions; this module only
calls the SDK and maps its exceptions. Retries are the ``Retry`` wrapper's job.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai

from ..errors import ProviderError
from ..messages import MessagesRequest, MessagesResponse, estimate_tokens
from .chat import ChatStreamTranslator, from_chat_response, to_chat_request
from .provider_errors import stream_error, to_provider_error
from ._sse import sse_events


class OpenAIModel:
    """A model behind an OpenAI-compatible Chat Completions endpoint."""

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 provider: str = "openai", headers: dict[str, str] | None = None,
                 timeout: float = 600.0) -> None:
        self.model, self.provider = model, provider
        self.name = f"{provider}:{model}"
        url = base_url or "https://api.openai.com/v1"
        self.gemini = "generativelanguage.googleapis.com" in url or provider == "gemini"
        # api.openai.com rejects max_tokens for its reasoning models; the compatible servers want max_tokens.
        self.max_tokens_field = "max_completion_tokens" if "api.openai.com" in url else "max_tokens"
        # api.openai.com and OpenRouter take PDFs as ``file`` parts; elsewhere a PDF document is dropped.
        self.files = "api.openai.com" in url or "openrouter.ai" in url
        # Local servers need no key, but the SDK insists on one.
        self._client = openai.AsyncOpenAI(api_key=api_key or "unused", base_url=url, max_retries=0,
                                          timeout=timeout, default_headers=headers or None)

    def _error(self, exc: BaseException) -> ProviderError:
        return to_provider_error(exc, provider=self.provider, model=self.model)

    def chat_body(self, request: MessagesRequest, warnings: list[str] | None = None) -> dict[str, Any]:
        """The Chat Completions body this adapter would send; what it drops is added to ``warnings``."""
        return to_chat_request(request, model=self.model, gemini=self.gemini, max_tokens_field=self.max_tokens_field,
                               files=self.files, warnings=warnings)

    async def request(self, request: MessagesRequest, *, headers: dict[str, str] | None = None,
                      warnings: list[str] | None = None) -> MessagesResponse:
        """One call, answered whole; what translation dropped is added to ``warnings``."""
        body = self.chat_body(request, warnings)
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                model=body.pop("model"), messages=body.pop("messages"), extra_body=body, extra_headers=headers)
            data = raw.http_response.json()
        except Exception as exc:
            raise self._error(exc) from exc
        if not isinstance(data, dict) or not data.get("choices"):
            raise ProviderError(f"the answer has no choices: {str(data)[:200]}", provider=self.provider,
                                model=self.model, kind="malformed_response")
        return from_chat_response(data, model=self.model)

    async def stream(self, request: MessagesRequest, *, headers: dict[str, str] | None = None,
                     warnings: list[str] | None = None) -> AsyncIterator[Any]:
        """One call, its chunks re-assembled into canonical stream events."""
        body = self.chat_body(request, warnings)
        body["stream_options"] = {"include_usage": True}
        translator = ChatStreamTranslator(self.model)
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                    model=body.pop("model"), messages=body.pop("messages"), stream=True, extra_body=body,
                    extra_headers=headers) as response:
                async for _, data in sse_events(response.iter_lines()):
                    if data.startswith("[DONE]"):
                        continue  # read on to the end, so the connection goes back to the pool
                    chunk = json.loads(data)
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise stream_error(chunk["error"], provider=self.provider, model=self.model)
                    for event in translator.feed(chunk):
                        yield event
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        if not translator.complete:
            raise ProviderError("the stream ended before a finish_reason", provider=self.provider,
                                model=self.model, kind="connection_error")
        for event in translator.finish():
            yield event

    async def count_tokens(self, request: MessagesRequest, *, headers: dict[str, str] | None = None) -> int:
        """An estimate: Chat Completions has no token-counting endpoint."""
        return estimate_tokens(request)
