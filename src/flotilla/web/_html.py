"""HTML by hand, escaped by default: every value put in a template is escaped unless it is ``Safe``.

Nothing reaches a page any other way, so a transcript that contains ``<script>`` shows as text.
Secrets are masked on the way: the values of the process's ``*_KEY`` / ``*_TOKEN`` / ``*_SECRET``
variables, and anything shaped like a provider or gateway key, never appear in a page.
"""

from __future__ import annotations

import functools
import html
import os
import re
from collections.abc import Iterable
from typing import Any

_KEY_SHAPES = re.compile(r"\b(sk-(?:ant-|proj-)?|flt-|AIza)[A-Za-z0-9_\-]{12,}")
_SECRET_NAMES = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


class Safe(str):
    """Markup that is already escaped (made only by this module's functions)."""


@functools.cache
def _secrets() -> re.Pattern[str] | None:
    """The secret values of this process's environment, as one pattern (read once: a server's
    environment does not change under it)."""
    values = sorted((v for k, v in os.environ.items() if _SECRET_NAMES.search(k) and len(v) >= 8), key=len,
                    reverse=True)
    return re.compile("|".join(re.escape(v) for v in values)) if values else None


def redact(text: str) -> str:
    """``text`` with every secret the process knows of, and every key-shaped string, masked."""
    secrets = _secrets()
    if secrets is not None:
        text = secrets.sub("•••", text)
    return _KEY_SHAPES.sub(lambda m: m.group(1) + "•••", text)


def esc(value: Any) -> Safe:
    """A value as HTML text: escaped (and redacted), ``Safe`` markup as it is, None as nothing."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    return Safe(html.escape(redact(str(value)), quote=True))


def h(template: str, **values: Any) -> Safe:
    """``template`` (trusted markup with ``{name}`` fields) filled with escaped values; numbers go in as
    numbers (nothing to escape), so that a field may format them (``{width:.1f}``)."""
    return Safe(template.format(**{k: v if isinstance(v, (int, float)) and not isinstance(v, bool) else esc(v)
                                   for k, v in values.items()}))


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    return Safe(sep.join(esc(p) for p in parts))
