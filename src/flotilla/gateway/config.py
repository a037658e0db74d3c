"""The gateway's configuration: the ``[gateway]`` section of flotilla.toml, typed.

Route targets are a model name or a list of up to three (the fallback chain,
tried in order until one answers before the first byte reaches the client).
Field names follow claude-code-router's ``Router`` block where it has one
(``longContext``, ``longContextThreshold``, ``webSearch`` are accepted as aliases).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_CHAIN = 3


def _chain(value: object) -> list[str] | None:
    if value is None:
        return None
    chain = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    chain = [str(m).strip() for m in chain if str(m).strip()]
    if not chain:
        return None
    if len(chain) > MAX_CHAIN:
        raise ValueError(f"a fallback chain holds at most {MAX_CHAIN} models, got {len(chain)}")
    return chain


class HeaderRule(BaseModel):
    """Route requests carrying a header (optionally with a given value) to a model."""

    model_config = ConfigDict(extra="forbid")

    header: str
    """The header name (case does not matter)."""
    equals: str | None = None
    """The value it must have; None matches any value."""
    model: list[str]
    """The model (or fallback chain) that serves the match."""

    _check = field_validator("model", mode="before")(lambda v: _chain(v))


class GatewayConfig(BaseModel):
    """``[gateway]`` in flotilla.toml."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = "127.0.0.1"
    """Where to listen; anything but loopback needs a key (master or created)."""
    auth: Literal["auto", "keys", "open"] = "auto"
    """``keys``: every request needs a valid key (with none, every request gets 401). ``open``: no
    key is asked for (loopback only). ``auto``: open on loopback while no key was ever created and no
    master key is set; from the first key created on, ``keys`` for good (revoking keys never opens it)."""
    port: int = 8788
    default: list[str] | None = None
    """Serves every request no other rule takes; None passes the requested model through the catalog."""
    background: list[str] | None = None
    """Serves requests for a haiku-family model (Claude Code's background calls)."""
    think: list[str] | None = None
    """Serves requests with thinking enabled."""
    long_context: list[str] | None = Field(None, alias="longContext")
    """Serves requests whose estimated input exceeds ``long_context_threshold``."""
    long_context_threshold: int = Field(60_000, alias="longContextThreshold")
    web_search: list[str] | None = Field(None, alias="webSearch")
    """Serves requests offering a web-search tool."""
    aliases: dict[str, list[str]] = {}
    """Names clients may send as ``model``, each to a model or chain."""
    headers: list[HeaderRule] = []
    """Header matches, tried in order."""
    router: str | None = None
    """A user function ``route(request) -> model | None``: ``module:function`` or ``path.py:function``."""
    fallbacks: dict[str, list[str]] = {}
    """Extra fallbacks for a model wherever it is routed: ``"openai:gpt-5" = ["openrouter:…"]``."""
    timeout_s: float = 600.0
    """How long an upstream call may take before the client gets a timeout error."""
    max_body_mb: float = 32.0
    """Bodies larger than this get 413."""
    reload_interval_s: float = 1.0
    """How often the configuration files are checked for changes."""
    fast_path: bool = True
    """Reach OpenAI-compatible backends through the gateway's own HTTP client instead of the SDK
    (same translation, far less CPU per call); off, or with an HTTP proxy set, the SDK is used."""
    log_requests: bool = True
    """Write one usage row per request to the store."""
    fallback_on_rate_limit: bool | list[str] = False
    """Move along a fallback chain on 429 too: true for every route, or the rules that should
    (``["default", "think", "alias:fast"]``). Off by default, as in Claude Code: a 429 usually
    clears, and the next model may cost more."""

    def falls_back_on_rate_limit(self, rule: str) -> bool:
        value = self.fallback_on_rate_limit
        return value if isinstance(value, bool) else rule in value

    _chains = field_validator("default", "background", "think", "long_context", "web_search",
                              mode="before")(lambda v: _chain(v))

    @field_validator("aliases", "fallbacks", mode="before")
    @classmethod
    def _chain_map(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _chain(v) or [] for k, v in value.items()}
        return value
