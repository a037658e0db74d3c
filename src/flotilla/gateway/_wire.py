"""Small pieces the front doors share: SSE framing, text and image parts, tool arguments, merging turns."""

from __future__ import annotations

import json
from typing import Any


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    """One server-sent event (``event:`` line first when the format names its events)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def text_of(content: Any) -> str:
    """The text of a content that is a string or a list of parts with ``text``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def image_block(url: str) -> dict[str, Any]:
    """A canonical image block from a URL (``data:`` URLs become base64 sources)."""
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def parse_args(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments (a JSON string, or already an object) as an object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def merged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive messages of one role joined (Messages alternates user and assistant)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if not m["content"]:
            continue
        if out and out[-1]["role"] == m["role"]:
            out[-1]["content"] = out[-1]["content"] + m["content"]
        else:
            out.append({"role": m["role"], "content": list(m["content"])})
    return out
