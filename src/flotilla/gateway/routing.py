"""Which model serves a request: the routing rules, tried in order.

1. an explicit ``provider:model`` (or claude-code-router's ``provider,model``) in ``model``;
2. the gateway's aliases;
3. the scenarios claude-code-router users know: ``longContext`` (estimated input over the
   threshold), ``background`` (a haiku-family model), ``think`` (thinking enabled),
   ``webSearch`` (a web-search tool offered);
4. header matches, in order;
5. the user's ``route(request) -> model | None`` function;
6. ``default``; and with no default, the requested name through the catalog.

A rule yields a chain of up to three models (the fallbacks).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError
from ..messages import MessagesRequest, estimate_tokens
from ..models.catalog import Catalog
from .config import MAX_CHAIN, GatewayConfig
from .errors import GatewayError


@dataclass(frozen=True)
class Route:
    """The rule that matched and the models to try, in order (resolved ``provider:model`` names)."""

    rule: str
    chain: tuple[str, ...]


class Router:
    """Applies one configuration's rules. Immutable: a reload builds a new one."""

    def __init__(self, config: GatewayConfig, catalog: Catalog, *, root: Path | None = None,
                 source: str = "flotilla.toml") -> None:
        self.config = config
        self.catalog = catalog
        self.user_route = load_function(config.router, root or Path.cwd(), source) if config.router else None

    def route(self, request: MessagesRequest, headers: Mapping[str, str]) -> Route:
        """The route for a request; raises ``GatewayError(404)`` for a model nobody serves."""
        rule, chain = self._match(request, headers)
        return Route(rule, self._resolve(chain, rule))

    def _match(self, request: MessagesRequest, headers: Mapping[str, str]) -> tuple[str, list[str]]:
        c, name = self.config, request.model.strip()
        if ":" in name or "," in name:
            return "explicit", [name]
        if name in c.aliases:
            return f"alias:{name}", c.aliases[name]
        if c.long_context and estimate_tokens(request) > c.long_context_threshold:
            return "longContext", c.long_context
        if c.background and "haiku" in name.lower():
            return "background", c.background
        if c.think and request.thinking_enabled():
            return "think", c.think
        if c.web_search and _has_web_search(request):
            return "webSearch", c.web_search
        for rule in c.headers:
            value = headers.get(rule.header.lower())
            if value is not None and (rule.equals is None or value == rule.equals):
                return f"header:{rule.header}", rule.model
        if self.user_route is not None:
            chosen = self.user_route(request)
            if chosen:
                return "router", [chosen] if isinstance(chosen, str) else list(chosen)
        if c.default:
            return "default", c.default
        return "model", [name]

    def _resolve(self, chain: list[str], rule: str) -> tuple[str, ...]:
        resolved: list[str] = []
        for name in chain:
            try:
                full = self.catalog.resolve(name)
            except UserError as exc:
                raise GatewayError(404, f"model {name!r} (rule {rule}) is not served here: {exc}",
                                   "not_found_error") from None
            for m in (full, *(self.catalog.resolve(f) for f in self.config.fallbacks.get(full, ()))):
                if m not in resolved:
                    resolved.append(m)
        return tuple(resolved[:MAX_CHAIN])


def _has_web_search(request: MessagesRequest) -> bool:
    for tool in request.tools or ():
        if (tool.type or "").startswith("web_search") or tool.name in ("web_search", "WebSearch"):
            return True
    return False


def load_function(spec: str, root: Path, source: str) -> Callable[[MessagesRequest], Any]:
    """Imports ``module:function`` or ``path.py:function`` (a path relative to the project root)."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ConfigError(source, "gateway.router", f"{spec!r} names no function",
                          "write it as module:function or path/to/file.py:function")
    try:
        if target.endswith(".py"):
            path = Path(target) if Path(target).is_absolute() else root / target
            mod_spec = importlib.util.spec_from_file_location(f"_flotilla_router_{path.stem}", path)
            if mod_spec is None or mod_spec.loader is None or not path.is_file():
                raise FileNotFoundError(str(path))
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        fn = getattr(module, attr)
    except (ImportError, FileNotFoundError, AttributeError, SyntaxError) as exc:
        raise ConfigError(source, "gateway.router", f"cannot load {spec!r} ({type(exc).__name__}: {exc})",
                          "point it at an existing file or module and a function defined in it") from None
    if not callable(fn):
        raise ConfigError(source, "gateway.router", f"{spec!r} is not a function", "name a function")
    return fn
