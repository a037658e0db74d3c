"""What a request may cost before it is sent: pricing checks and the bound reserved against a budget.

A budgeted key reserves, before the call, a bound the call cannot exceed: every
input token counted as at most one byte of the request's JSON (tokenizers of the
catalog's models never make a token of less than a byte; images are counted at
their token cap instead of their base64 size), priced at the model's dearest
input rate (plain, cache write or cache read), plus ``max_tokens`` at its output
price, for the dearest model of the fallback chain. When the call ends the key is
charged its real cost and the rest of the bound is released.
"""

from __future__ import annotations

from typing import Any

from ..messages import ImageBlock, MessagesRequest, ToolResultBlock
from .errors import GatewayError
from .keys import Key, KeyStore

TOOLS_PROMPT_TOKENS = 1024
"""Tokens a provider may add for the tool-use system prompt it builds (Anthropic's is under 400)."""
IMAGE_TOKENS = 6400
"""A bound on one image's tokens (providers scale images down to well under this)."""


def priced_chain(catalog: Any, key: Key, chain: tuple[str, ...]) -> tuple[str, ...]:
    """The chain without unpriced models for a budgeted key; refused when none is priced."""
    if key.budget_usd is None or key.allow_unpriced:
        return chain
    priced = tuple(m for m in chain if catalog.info(m) is not None)
    if priced:
        return priced
    raise GatewayError(
        403, f"key {key.name!r} has a budget, and {chain[0]} has no price in the catalog, so its cost could "
             f"not be counted against it. Price it in flotilla.toml: [models.\"{chain[0]}\"] input = …, "
             "output = … (USD per million tokens), or create the key with --allow-unpriced", "permission_error")


def input_bound(request: MessagesRequest, body_size: int) -> int:
    """At most this many input tokens: the body's bytes, images at ``IMAGE_TOKENS`` each."""
    tokens = body_size + (TOOLS_PROMPT_TOKENS if request.tools else 0)
    for message in request.messages:
        if isinstance(message.content, str):
            continue
        for block in message.content:
            inner = block.content if isinstance(block, ToolResultBlock) and isinstance(block.content, list) else [block]
            for b in inner:
                if isinstance(b, ImageBlock) and b.source.get("type") == "base64":
                    tokens += IMAGE_TOKENS - len(b.source.get("data", ""))
    return max(1, tokens)


def bound_usd(catalog: Any, chain: tuple[str, ...], request: MessagesRequest, body_size: int) -> float:
    """The most the request can cost on any model of ``chain``."""
    tokens_in = input_bound(request, body_size)
    worst = 0.0
    for name in chain:
        info = catalog.info(name)
        if info is not None:
            rate_in = max(info.input, info.cache_write, info.cache_read)
            worst = max(worst, (tokens_in * rate_in + request.max_tokens * info.output) / 1_000_000)
    return worst


def admit(keys: KeyStore, key: Key, bound: float) -> None:
    """Reserves ``bound`` against the key's budget, or refuses with what is spent and what is held."""
    if key.budget_usd is None or keys.reserve(key, bound):
        return
    spent, reserved = keys.spent(key)
    if spent >= key.budget_usd:
        raise GatewayError(429, f"the budget of key {key.name!r} (${key.budget_usd:.2f}) is spent "
                                f"(${spent:.4f}); raise it or create a key with a new budget", "rate_limit_error")
    raise GatewayError(429, f"the rest of key {key.name!r}'s budget (${key.budget_usd - spent:.4f} of "
                            f"${key.budget_usd:.2f}) is reserved by requests in flight (${reserved:.4f}); retry "
                            f"when they finish, or lower max_tokens (this request reserves up to ${bound:.4f})",
                       "rate_limit_error", retry_after=1.0)
