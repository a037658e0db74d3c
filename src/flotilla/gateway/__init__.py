"""The Anthropic-compatible model gateway: routing, translation, fallbacks, keys, budgets, usage.

``flotilla gateway`` serves it; ``build_gateway(store)`` gives the ASGI app.
It uses ``flotilla.models`` and ``flotilla.store`` only (never the agent runtime).
"""

from .app import Gateway
from .config import GatewayConfig
from .keys import KeyStore
from .server import build_gateway, running, serve

__all__ = ["Gateway", "GatewayConfig", "KeyStore", "build_gateway", "running", "serve"]
