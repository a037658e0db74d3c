"""A run's transcript as HTML, one fragment per stored event: what the page shows at first and what
the live stream appends. Every value goes through ``_html``'s escaping (a ``<script>`` a model or a
tool wrote is text), and events that are not part of the conversation render as nothing."""

from __future__ import annotations

import json
from typing import Any

from ._html import Safe, h, join

PREVIEW = 4000
"""Characters of a tool's input or output shown (the store keeps more; `flotilla show --json` has it)."""


def fragment(event: dict[str, Any]) -> Safe:
    """The HTML of one event of a run's own transcript, or empty for events the transcript leaves out."""
    kind = event.get("event")
    if kind == "MessageAdded":
        return _message(event["message"], event["id"])
    note = _NOTES.get(kind)
    if note is None:
        return Safe("")
    cls, text = note(event)
    return h('<div class="note {cls}" data-event="{id}">{text}</div>', cls=cls, id=event["id"], text=text)


_NOTES = {
    "ToolDenied": lambda e: ("denied", f"denied {e['tool']}: {e['reason']}"),
    "SandboxDenied": lambda e: ("denied", f"sandbox refused {e['tool']}: {e['reason']} {e.get('command', '')}"),
    "SteeringReceived": lambda e: ("steer", "steered: " + (e["message"] or "")
                                   + (" (now read-only)" if e.get("read_only") else "")),
    "FallbackUsed": lambda e: ("fallback", f"fallback {e['from_model']} → {e['to_model']}: {e['reason']}"),
    "AdvisorConsulted": lambda e: ("advisor", f"advisor ({e['trigger']}): {e['advice']}"),
    "McpServerFailed": lambda e: ("denied", f"MCP server {e['server']} did not start: {e['error']}"),
    "RunFinished": lambda e: ("end", f"run ended: {e['status']} {e.get('reason') or ''}"),
}


def _message(message: dict[str, Any], event_id: int) -> Safe:
    role = message.get("role", "?")
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    return h('<div class="msg {role}" data-event="{id}"><div class="role">{role}</div>{blocks}</div>',
             role=role, id=event_id, blocks=join(_block(b) for b in blocks))


def _block(block: dict[str, Any]) -> Safe:
    kind = block.get("type")
    if kind == "text":
        return h('<pre class="text">{t}</pre>', t=block.get("text", ""))
    if kind == "tool_use":
        return h('<div class="tool"><span class="arrow">→</span> <b>{name}</b><pre>{input}</pre></div>',
                 name=block.get("name", ""), input=_clip(json.dumps(block.get("input", {}), indent=1)))
    if kind == "tool_result":
        body = block.get("content")
        text = body if isinstance(body, str) else "".join(b.get("text", "") for b in body or [])
        return h('<div class="result{err}"><span class="arrow">{mark}</span><pre>{t}</pre></div>',
                 err=" error" if block.get("is_error") else "", mark="✗" if block.get("is_error") else "←",
                 t=_clip(text))
    if kind == "thinking":
        return h('<details class="thinking"><summary>thinking</summary><pre>{t}</pre></details>',
                 t=_clip(block.get("thinking", "")))
    return h('<div class="other">({kind})</div>', kind=kind)


def _clip(text: str) -> str:
    return text if len(text) <= PREVIEW else text[:PREVIEW] + f"\n… {len(text) - PREVIEW:,} more characters"


def render(events: list[dict[str, Any]]) -> Safe:
    return join(fragment(e) for e in events)
