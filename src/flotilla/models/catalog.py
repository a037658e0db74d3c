"""The model catalog: aliases, context windows and prices, from a data file the user can override."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import UnknownModel, UserError
from ..messages import Usage


@dataclass(frozen=True)
class ModelInfo:
    """One model's limits and prices (USD per million tokens)."""

    name: str
    context_window: int = 200_000
    max_output: int = 8192
    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    def cost(self, usage: Usage) -> float:
        return (usage.input_tokens * self.input + usage.output_tokens * self.output
                + usage.cache_read_input_tokens * self.cache_read
                + usage.cache_creation_input_tokens * self.cache_write) / 1_000_000


class Catalog:
    """Resolves model names (``provider:model`` or an alias) and prices their usage."""

    def __init__(self, models: dict[str, ModelInfo], aliases: dict[str, str]) -> None:
        self.models = models
        self.aliases = aliases

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None) -> Catalog:
        """The built-in catalog, with ``[models]`` and ``[aliases]`` tables from configuration on top."""
        data = tomllib.loads(resources.files(__package__).joinpath("catalog.toml").read_text())
        models = {name: _info(name, fields) for name, fields in data["models"].items()}
        aliases = dict(data["aliases"])
        for name, fields in (overrides or {}).get("models", {}).items():
            base = models.get(name)
            merged = {**(base.__dict__ if base else {}), **fields}
            merged.pop("name", None)
            models[name] = _info(name, merged)
        aliases.update((overrides or {}).get("aliases", {}))
        return cls(models, aliases)

    def resolve(self, name: str, *, inherit: str | None = None) -> str:
        """The full ``provider:model`` a name stands for.

        ``inherit`` (or an empty name) takes the caller's model; aliases follow
        the catalog; a bare ``claude-…`` id means Anthropic.
        """
        name = name.strip()
        if name in ("", "inherit"):
            if not inherit:
                raise UserError("model 'inherit' needs a parent model; pass --model")
            return self.resolve(inherit)
        if name in self.aliases:
            return self.aliases[name]
        if ":" in name:
            return name
        if "," in name:  # claude-code-router's "provider,model"
            provider, model = name.split(",", 1)
            return f"{provider}:{model}"
        if name.startswith("claude-"):
            return f"anthropic:{name}"
        raise UnknownModel(name, sorted(self.aliases) + sorted(m for m in self.models if "*" not in m))

    def info(self, name: str) -> ModelInfo | None:
        """Limits and prices of a resolved name; ``provider:*`` entries cover a whole provider."""
        if name in self.models:
            return self.models[name]
        provider = name.split(":", 1)[0]
        return self.models.get(f"{provider}:*")

    def cost(self, name: str, usage: Usage) -> float:
        info = self.info(name)
        return info.cost(usage) if info else 0.0


def _info(name: str, fields: dict[str, Any]) -> ModelInfo:
    allowed = set(ModelInfo.__dataclass_fields__) - {"name"}
    unknown = set(fields) - allowed
    if unknown:
        raise UserError(f"catalog entry {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return ModelInfo(name=name, **fields)
