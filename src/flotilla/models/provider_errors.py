"""Vendor exceptions (``anthropic``, ``openai``, ``httpx``) translated into ``ProviderError`` at the seam.

Both SDKs share the same shapes (``APIStatusError`` with ``status_code`` and
``response``, ``APITimeoutError`` under ``APIConnectionError``), so one
function serves both. Kinds follow Anthropic's error types so that wrappers
decide on one vocabulary whatever the backend. Public: the gateway's own HTTP
client maps statuses and ``retry-after`` with the same functions.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

from ..errors import ProviderError

__all__ = ["KINDS", "retry_after", "stream_error", "to_provider_error"]

KINDS = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 502: "api_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error",
}
_ANTHROPIC_KINDS = set(KINDS.values())
_STATUS_OF_KIND = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                   "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                   "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}


def to_provider_error(exc: BaseException, *, provider: str, model: str) -> ProviderError:
    """The ``ProviderError`` standing for a vendor exception (status None for timeouts and lost connections)."""
    if isinstance(exc, ProviderError):
        return exc
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    name = type(exc).__name__
    body = getattr(exc, "body", None)
    vendor_type, message, code = _error_fields(body)
    if isinstance(status, int) and response is not None and status >= 400:
        kind = KINDS.get(status) or (vendor_type if vendor_type in _ANTHROPIC_KINDS else "api_error")
        retryable = None
        if code == "insufficient_quota":  # OpenAI's 429 for an empty account: waiting will not help
            kind, retryable = "billing_error", False
        text = message or getattr(exc, "message", str(exc))
        if code and code not in text:
            text = f"{text} ({code})"
        return ProviderError(text, status=status, provider=provider, model=model, kind=kind, retryable=retryable,
                             retry_after=retry_after(response.headers))
    if name in ("APIStatusError", "APIError") and (vendor_type or message):
        return stream_error(body, provider=provider, model=model)
    if "Timeout" in name:  # anthropic/openai APITimeoutError, httpx.ReadTimeout …
        return ProviderError(f"the request timed out ({exc})", provider=provider, model=model, kind="timeout")
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)) or name == "APIResponseValidationError":
        return ProviderError(f"the provider sent a response that is not valid JSON ({exc})", provider=provider,
                             model=model, kind="malformed_response")
    if "Connection" in name or _is_transport_error(exc):
        cause = exc.__cause__ or exc.__context__
        detail = f"{exc}" + (f" ({cause})" if cause and str(cause) != str(exc) else "")
        return ProviderError(f"the connection failed or was cut: {detail}", provider=provider, model=model,
                             kind="connection_error")
    return ProviderError(f"{name}: {exc}", provider=provider, model=model, kind="api_error", retryable=False)


def stream_error(body: object, *, provider: str, model: str) -> ProviderError:
    """An error event inside a stream that began 200 OK (Anthropic's ``event: error``,
    OpenRouter's ``data: {"error": …}``): the status comes from the error's type or code."""
    vendor_type, message, code = _error_fields(body)
    kind = vendor_type if vendor_type in _ANTHROPIC_KINDS else "api_error"
    status = _STATUS_OF_KIND.get(kind, 500)
    if code and code.isdigit() and int(code) >= 400:
        status = int(code)
        kind = KINDS.get(status, kind)
    text = (message or "the provider sent an error event") + (f" ({code})" if code and code not in (message or "") else "")
    return ProviderError(text, status=status, provider=provider, model=model, kind=kind)


def _is_transport_error(exc: BaseException) -> bool:
    """httpx (or httpx2) transport errors raised while a stream is being read."""
    return any(cls.__name__ in ("TransportError", "StreamError", "HTTPError")
               and cls.__module__.startswith("httpx") for cls in type(exc).__mro__)


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(type, message, code) from an Anthropic or OpenAI error body (or its inner ``error``)."""
    if not isinstance(body, dict):
        return None, (str(body) if body else None), None
    inner = body.get("error", body)
    if not isinstance(inner, dict):
        return None, str(inner), None
    code = inner.get("code")
    return inner.get("type"), inner.get("message"), (str(code) if code is not None else None)


def retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), if any."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())
