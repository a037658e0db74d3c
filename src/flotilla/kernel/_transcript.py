"""An external CLI's structured output as a flotilla transcript (canonical messages).

Claude Code's ``--output-format stream-json`` prints one JSON object a line, the conversation's
messages already in the Messages shape; ``codex exec --json`` prints its thread's items (agent
messages, commands run with their output, file changes); Gemini CLI's ``-o stream-json`` its
messages (answers in deltas), tool uses and tool results. All become the messages
``flotilla show`` prints for a flotilla agent's run. Lines that are not JSON (warnings) are skipped.
"""

from __future__ import annotations

import json
from typing import Any


def transcript(kind: str | None, output: str) -> list[dict[str, Any]]:
    """The messages in ``output`` of a CLI of ``kind``; empty when it has no structured mode."""
    parse = {"claude-code": _claude, "codex": _codex, "gemini": _gemini}.get(kind or "")
    if parse is None:
        return []
    messages: list[dict[str, Any]] = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            for message in parse(obj):
                if _text(message) is not None and messages and _text(messages[-1]) is not None \
                        and messages[-1]["role"] == message["role"] and message.get("delta"):
                    messages[-1]["content"][0]["text"] += _text(message)  # a streamed answer, joined
                else:
                    messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _text(message: dict[str, Any]) -> str | None:
    blocks = message["content"]
    if isinstance(blocks, list) and len(blocks) == 1 and isinstance(blocks[0], dict) \
            and blocks[0].get("type") == "text":
        return str(blocks[0].get("text", ""))
    return None


def _claude(obj: dict[str, Any]) -> list[dict[str, Any]]:
    message = obj.get("message")
    if obj.get("type") in ("assistant", "user") and isinstance(message, dict) and "content" in message:
        return [{"role": message.get("role", obj["type"]), "content": message["content"]}]
    return []


def _codex(obj: dict[str, Any]) -> list[dict[str, Any]]:
    item = obj.get("item")
    if obj.get("type") != "item.completed" or not isinstance(item, dict):
        return []
    kind, ident = item.get("type"), str(item.get("id", ""))
    if kind == "agent_message":
        return [{"role": "assistant", "content": [{"type": "text", "text": item.get("text", "")}]}]
    if kind == "reasoning":
        return [{"role": "assistant", "content": [{"type": "thinking", "thinking": item.get("text", "")}]}]
    if kind == "command_execution":
        return [{"role": "assistant", "content": [{"type": "tool_use", "id": ident, "name": "exec_command",
                                                   "input": {"cmd": item.get("command", "")}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": ident,
                                              "content": str(item.get("aggregated_output", "")),
                                              "is_error": item.get("exit_code") not in (0, None)}]}]
    if kind == "file_change":
        changes = ", ".join(f"{c.get('kind', '?')} {c.get('path', '?')}" for c in item.get("changes") or [])
        return [{"role": "assistant", "content": [{"type": "tool_use", "id": ident, "name": "apply_patch",
                                                   "input": {"changes": changes}}]}]
    return []


def _gemini(obj: dict[str, Any]) -> list[dict[str, Any]]:
    kind = obj.get("type")
    if kind == "message" and obj.get("role") in ("user", "assistant"):
        return [{"role": obj["role"], "content": [{"type": "text", "text": str(obj.get("content", ""))}],
                 "delta": bool(obj.get("delta"))}]
    if kind == "tool_use":
        return [{"role": "assistant", "content": [{"type": "tool_use", "id": str(obj.get("tool_id", "")),
                                                   "name": obj.get("tool_name", ""),
                                                   "input": obj.get("parameters") or {}}]}]
    if kind == "tool_result":
        return [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": str(obj.get("tool_id", "")),
                                              "content": str(obj.get("output", "")),
                                              "is_error": obj.get("status") not in ("success", None)}]}]
    return []
