"""The gateway's live configuration: settings, router and backends, reloaded when the files change.

A reload builds a new ``Snapshot``; each request takes the snapshot current
when it arrived and keeps it to the end, so streams in flight finish on the
configuration (and the upstream clients) they started with.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import USER_FILE, Settings, load_settings
from ..errors import FlotillaError, UnknownModel, UserError
from ..messages import Message, MessagesRequest
from ..models.catalog import Catalog
from ..protocols import Model
from .config import GatewayConfig
from .errors import GatewayError
from .routing import Router

log = logging.getLogger("flotilla.gateway")


class Snapshot:
    """One configuration's router and the backend models it has built so far."""

    def __init__(self, settings: Settings, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.config = settings.section("gateway", GatewayConfig)
        self.catalog = Catalog.load(settings.data)
        self.providers = settings.providers()
        self.router = Router(self.config, self.catalog, root=settings.root,
                             source=settings.origin("gateway.router"))
        self.environ = environ
        self.secrets = _secrets(self.providers, environ)
        """Every configured provider key, scrubbed from upstream messages before a client sees them."""
        self._models: dict[str, Model] = {}

    def warm(self) -> None:
        """Builds the backends every configured rule names, so the first request pays no import or set-up."""
        c = self.config
        chains = [c.default, c.background, c.think, c.long_context, c.web_search, *c.aliases.values(),
                  *(rule.model for rule in c.headers)]
        for chain in chains:
            for name in chain or ():
                try:
                    self.model(self.catalog.resolve(name))
                except Exception as exc:  # a bad target fails its own requests, with the reason, later
                    log.warning("gateway: cannot prepare %s: %s", name, exc)

    def serves(self, name: str) -> bool:
        """Whether a plain request for model ``name`` has a route to a backend the gateway can reach."""
        probe = MessagesRequest(model=name, max_tokens=1, messages=[Message(role="user", content="hi")])
        try:
            route = self.router.route(probe, {})
            if route.rule == "model":
                self.model(route.chain[0])
        except GatewayError:
            return False
        return True

    def unrouted_families(self) -> list[str]:
        """Claude Code's model families (opus, sonnet, haiku) that no rule routes to a reachable model."""
        return [f for f in ("opus", "sonnet", "haiku") if not self.serves(f"claude-{f}-4-5")]

    def kind(self, name: str) -> str:
        """The wire API (``anthropic``, ``openai``, ``scripted``) of a resolved model's provider."""
        provider = self.providers.get(name.split(":", 1)[0])
        return provider.kind if provider else "unknown"

    def model(self, name: str) -> Model:
        """The backend for a resolved ``provider:model`` name, built once per snapshot."""
        model = self._models.get(name)
        if model is None:
            try:
                model = _build_model(name, self.settings, self.catalog, self.environ, self.config)
            except UnknownModel as exc:
                raise GatewayError(404, str(exc), "not_found_error") from None
            except UserError as exc:  # a missing provider key: the gateway's configuration, not the client
                raise GatewayError(500, f"the gateway cannot reach {name}: {exc}", "api_error") from None
            self._models[name] = model
        return model


def _secrets(providers: dict[str, Any], environ: dict[str, str] | None) -> tuple[str, ...]:
    env = os.environ if environ is None else environ
    found = {env.get(p.api_key_env, "") for p in providers.values() if p.api_key_env}
    return tuple(sorted(s for s in found if len(s) >= 6))


def _build_model(name: str, settings: Settings, catalog: Catalog, environ: dict[str, str] | None,
                 config: GatewayConfig) -> Model:
    from ..models.providers import build_model  # the adapters, imported when first needed

    model = build_model(name, settings=settings, catalog=catalog, environ=environ, timeout=config.timeout_s)
    if config.fast_path and type(model).__name__ in ("OpenAIModel", "AnthropicModel") and not _proxied(environ):
        return _lean(model, settings, environ)
    return model


def _proxied(environ: dict[str, str] | None) -> bool:
    """Whether an HTTP proxy is configured (our lean client does not speak to proxies; the SDK does)."""
    env = os.environ if environ is None else environ
    return any(env.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                     "all_proxy"))


def _lean(model: Any, settings: Settings, environ: dict[str, str] | None) -> Model:
    from ..models.providers import api_key
    from .lean import LeanChat

    config = settings.providers()[model.provider]
    key = api_key(model.provider, config, os.environ if environ is None else environ)
    if config.kind == "anthropic":
        from .passthrough import PassThrough

        return PassThrough(model, config.base_url or "https://api.anthropic.com", key, dict(config.headers))
    return LeanChat(model, config.base_url or "https://api.openai.com/v1", key, dict(config.headers))


class LiveConfig:
    """Hands out the current snapshot, rebuilding it when a watched file changes (checked at most
    every ``reload_interval_s`` seconds, on the request path: no background task)."""

    def __init__(self, loader: Callable[[], Settings], watched: list[Path],
                 environ: dict[str, str] | None = None) -> None:
        self.loader = loader
        self.watched = watched
        self.environ = environ
        self.current = Snapshot(loader(), environ)
        self.reloads = 0
        self._stamps = self._stat()
        self._next_check = time.monotonic() + self.current.config.reload_interval_s

    def get(self) -> Snapshot:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.current.config.reload_interval_s
            stamps = self._stat()
            if stamps != self._stamps:
                self._stamps = stamps
                self.reload()
        return self.current

    def reload(self) -> bool:
        """Rebuilds the snapshot; a bad file keeps the old one and logs why."""
        try:
            self.current = Snapshot(self.loader(), self.environ)
        except FlotillaError as exc:
            log.warning("gateway configuration not reloaded, keeping the previous one: %s", exc)
            return False
        self.reloads += 1
        log.info("gateway configuration reloaded")
        return True

    def _stat(self) -> list[Any]:
        stamps = []
        for path in self.watched:
            try:
                st = os.stat(path)
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return stamps


def project_config(cwd: Path | None = None, flags: dict[str, Any] | None = None,
                   environ: dict[str, str] | None = None) -> LiveConfig:
    """The live configuration from flotilla.toml (project and user), watched for changes."""
    cwd = cwd or Path.cwd()

    def loader() -> Settings:
        return load_settings(flags, cwd=cwd, environ=environ)

    first = loader()
    watched = [first.root / "flotilla.toml", USER_FILE.expanduser()]
    return LiveConfig(loader, watched, environ)
