"""From a model name to a ready adapter: alias → ``provider:model`` → provider settings → key → adapter.

Provider settings (kind, base URL, key variable, headers) are configuration
(``config.PRESETS`` plus the user's ``[providers.NAME]`` tables); keys are
read from the environment at build time and never stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..config import ProviderConfig, Settings, load_settings
from ..errors import MissingApiKey, UnknownModel
from .catalog import Catalog
from .local import local_model, local_model_names


def build_model(name: str, *, settings: Settings | None = None, catalog: Catalog | None = None,
                environ: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
    """The adapter for ``name`` (an alias or ``provider:model``); its ``.name`` is ``provider:model``.

    Raises ``UnknownModel`` naming the providers (or scripted models) that exist,
    and ``MissingApiKey`` naming the environment variable to set.
    """
    settings = settings if settings is not None else load_settings()
    catalog = catalog if catalog is not None else Catalog.load(settings.data)
    resolved, config, key = _provider(name, settings, catalog, os.environ if environ is None else environ)
    provider, _, model = resolved.partition(":")
    if config.kind == "scripted":
        return local_model(model)
    options: dict[str, Any] = {"api_key": key, "base_url": config.base_url, "provider": provider,
                               "headers": dict(config.headers)}
    if timeout is not None:
        options["timeout"] = float(timeout)
    if config.kind == "anthropic":
        from .anthropic import AnthropicModel

        return AnthropicModel(model, **options)
    from .openai import OpenAIModel

    return OpenAIModel(model, **options)


def check_model(name: str, *, settings: Settings, catalog: Catalog,
                environ: Mapping[str, str] | None = None) -> str:
    """What ``build_model`` would refuse, found without building anything: the name resolves, its
    provider exists, its key is set (or its scripted model is registered). Returns ``provider:model``."""
    resolved, config, _key = _provider(name, settings, catalog, os.environ if environ is None else environ)
    if config.kind == "scripted" and resolved not in local_model_names():
        raise UnknownModel(resolved, local_model_names(), kind="scripted model")
    return resolved


def _provider(name: str, settings: Settings, catalog: Catalog,
              environ: Mapping[str, str]) -> tuple[str, ProviderConfig, str | None]:
    resolved = catalog.resolve(name, inherit=settings.model if name.strip() in ("", "inherit") else None)
    provider, _, model = resolved.partition(":")
    providers = settings.providers()
    config = providers.get(provider)
    if config is None or not model:
        raise UnknownModel(provider if config is None else resolved, sorted(providers),
                           kind="provider" if config is None else "model (expected provider:model)")
    key = None if config.kind == "scripted" else api_key(provider, config, environ)
    return resolved, config, key


def api_key(provider: str, config: ProviderConfig, environ: Mapping[str, str]) -> str | None:
    """The provider's key from its ``api_key_env`` variable; None for providers that need none."""
    if not config.api_key_env:
        return None
    value = environ.get(config.api_key_env, "").strip()
    if not value:
        raise MissingApiKey(provider, config.api_key_env)
    return value


def key_status(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """For each provider: ``set``, ``missing (VAR)`` or ``not needed``, for ``flotilla models``."""
    environ = os.environ if environ is None else environ
    status = {}
    for provider, config in sorted(settings.providers().items()):
        if not config.api_key_env:
            status[provider] = "not needed"
        elif environ.get(config.api_key_env, "").strip():
            status[provider] = f"set ({config.api_key_env})"
        else:
            status[provider] = f"missing ({config.api_key_env})"
    return status
