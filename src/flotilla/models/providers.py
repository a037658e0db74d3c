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
from .local import local_model


def build_model(name: str, *, settings: Settings | None = None, catalog: Catalog | None = None,
                environ: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
    """The adapter for ``name`` (an alias or ``provider:model``); its ``.name`` is ``provider:model``.

    Raises ``UnknownModel`` naming the providers (or scripted models) that exist,
    and ``MissingApiKey`` naming the environment variable to set.
    """
    settings = settings if settings is not None else load_settings()
    catalog = catalog if catalog is not None else Catalog.load(settings.data)
    resolved = catalog.resolve(name, inherit=settings.model if name.strip() in ("", "inherit") else None)
    provider, _, model = resolved.partition(":")
    providers = settings.providers()
    config = providers.get(provider)
    if config is None or not model:
        raise UnknownModel(provider if config is None else resolved, sorted(providers),
                           kind="provider" if config is None else "model (expected provider:model)")
    if config.kind == "scripted":
        return local_model(model)
    key = api_key(provider, config, os.environ if environ is None else environ)
    options: dict[str, Any] = {"api_key": key, "base_url": config.base_url, "provider": provider,
                               "headers": dict(config.headers)}
    if timeout is not None:
        options["timeout"] = float(timeout)
    if config.kind == "anthropic":
        from .anthropic import AnthropicModel

        return AnthropicModel(model, **options)
    from .openai import OpenAIModel

    return OpenAIModel(model, **options)


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
