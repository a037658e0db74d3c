"""``GET /v1/models`` and ``GET /v1/models/{id}``, paged as Anthropic pages them.

The names a client may send: the gateway's aliases, the catalog's aliases and
its models. ``limit`` (1–1000, default 20), ``after_id`` and ``before_id`` page
through them. ``/v1/models/{id}`` answers for those and for any name a rule
routes to a reachable backend; anything else is 404 ``not_found_error``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from .errors import GatewayError
from .state import Snapshot


def _names(snap: Snapshot) -> list[str]:
    names = list(snap.config.aliases) + sorted(snap.catalog.aliases) + sorted(
        m for m in snap.catalog.models if "*" not in m)
    return list(dict.fromkeys(names))


def _entry(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": "2025-01-01T00:00:00Z"}


def models_page(snap: Snapshot, query: bytes) -> dict[str, Any]:
    """One page of the model list for a query string."""
    params = {k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()}
    raw_limit = params.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise GatewayError(400, f"limit: Input should be an integer from 1 to 1000, not {raw_limit!r}")
    limit = int(raw_limit)
    names = _names(snap)
    start, end = 0, len(names)
    for field, offset in (("after_id", 1), ("before_id", 0)):
        if field in params:
            if params[field] not in names:
                raise GatewayError(400, f"{field}: no model {params[field]!r} in the list")
            at = names.index(params[field]) + offset
            start, end = (at, end) if offset else (start, at)
    window = names[start:end]
    page = window[-limit:] if "before_id" in params and "after_id" not in params else window[:limit]
    data = [_entry(n) for n in page]
    return {"data": data, "has_more": len(page) < len(window), "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None}


def model_entry(snap: Snapshot, name: str) -> dict[str, Any]:
    """One model's entry (any name the gateway routes somewhere it can reach), or 404."""
    if name in _names(snap) or snap.serves(name):
        return _entry(name)
    raise GatewayError(404, f"model {name!r} is not in this gateway's list; GET /v1/models lists them",
                       "not_found_error")
