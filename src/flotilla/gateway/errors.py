"""Errors in Anthropic's JSON shape, and the mapping from flotilla's error tree to them.

Upstream messages are scrubbed on the way: a provider that echoes the request's
``Authorization`` header must not hand the gateway's key to every client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from ..errors import BudgetExceeded, ProviderError

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class GatewayError(Exception):
    """An error the gateway answers with: status, Anthropic error type and a message safe to show."""

    def __init__(self, status: int, message: str, kind: str | None = None,
                 retry_after: float | None = None) -> None:
        self.status = status
        self.kind = kind or ERROR_TYPES.get(status, "api_error")
        self.message = message
        self.retry_after = retry_after
        super().__init__(message)

    def body(self, request_id: str) -> bytes:
        return json.dumps({"type": "error", "error": {"type": self.kind, "message": self.message},
                           "request_id": request_id}).encode()

    def sse(self, request_id: str) -> bytes:
        """The same error as an SSE ``event: error``, for a stream already under way."""
        return b"event: error\ndata: " + self.body(request_id) + b"\n\n"


# A bearer credential, an api-key header's value, or a key-shaped token (sk-…, sk-ant-…, flt-…, AIza…).
_SECRET_SHAPES = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|((?:x-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"
    r"|\b(?:sk-(?:ant-)?|flt-|AIza)[A-Za-z0-9_-]{8,}")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secrets and without anything shaped like a key or bearer token."""
    for secret in secrets:
        if secret and len(secret) >= 6 and secret in text:
            text = text.replace(secret, "[redacted]")
    if not any(m in text for m in ("earer", "ey", "uthorization", "sk-", "flt-", "AIza")):
        return text
    return _SECRET_SHAPES.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


def from_exception(exc: BaseException, secrets: Iterable[str] = ()) -> GatewayError:
    """The gateway error for anything raised while serving; the message never carries a key."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, BudgetExceeded):
        return GatewayError(429, str(exc))
    if isinstance(exc, ProviderError):
        error = _from_provider(exc)
        error.message = scrub(error.message, secrets)
        return error
    return GatewayError(500, f"internal error: {type(exc).__name__}")


def _from_provider(exc: ProviderError) -> GatewayError:
    where = f"{exc.provider}:{exc.model}" if exc.provider else exc.model
    if exc.kind == "malformed_response":
        return GatewayError(500, f"upstream {where} sent an answer that is not valid JSON", "api_error")
    if exc.status is None:
        if "timeout" in exc.kind or "timed out" in str(exc).lower():
            return GatewayError(504, f"upstream {where} timed out", "timeout_error")
        return GatewayError(529, f"upstream {where} unreachable: {exc.kind}", "overloaded_error")
    status = exc.status
    if status in (401, 403):
        # The upstream refused *our* credentials: not the client's fault.
        return GatewayError(500, f"upstream {where} refused the gateway's credentials ({status}); "
                                 "check the provider's API key variable", "api_error")
    if status == 408:
        return GatewayError(504, f"upstream {where} timed out", "timeout_error")
    if status == 503 or exc.overloaded:
        return GatewayError(529, f"upstream {where} is overloaded", "overloaded_error", exc.retry_after)
    if status in ERROR_TYPES:
        return GatewayError(status, f"upstream {where}: {_short(exc)}", ERROR_TYPES[status], exc.retry_after)
    if status >= 500:
        return GatewayError(500, f"upstream {where} failed with {status}", "api_error")
    return GatewayError(400, f"upstream {where} rejected the request ({status}): {_short(exc)}")


def _short(exc: ProviderError) -> str:
    text = str(exc)
    return text if len(text) < 500 else text[:500] + "…"
