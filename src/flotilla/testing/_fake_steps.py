"""Script steps of the fake provider: plain dicts (so script files work) turned into answers.

A step is a dict with any of:

- ``text``: the answer's text; ``echo: true`` answers with the last user text
- ``thinking`` (and ``signature``): a thinking block before the text
- ``tool_uses``: ``[{"name": …, "input": {…}, "id"?: …}]`` (or ``tool_use`` for one call)
- ``stop_reason``: defaults to ``tool_use`` when there are tool uses, else ``end_turn``
- ``id``: the message id to answer with (a fixed one repeats, as some local servers do)
- ``pieces``: how many deltas the text is streamed in (default 3)
- ``interleave: true``: (OpenAI format) parallel tool calls' argument chunks alternate
- ``echo_auth: true``: an error step's message ends with the credentials the request carried
  (``Authorization`` / ``x-api-key``), as some providers echo them
- ``input_tokens``, ``output_tokens``, ``cache_read``, ``cache_write``: usage; input and output
  are estimated from the request and the answer when not given
- faults: ``status`` (with ``error_type``, ``message``, ``retry_after``) answers with an error;
  ``delay`` holds back the first byte that many seconds; ``event_delay`` paces stream events;
  ``cut_after`` drops the connection after that many stream events (or mid-body when not
  streamed); ``malformed: true`` sends a body that is not JSON; ``stream_error: TYPE`` sends an
  error event (``overloaded_error`` …) after ``cut_after`` events (default 3) of a 200 stream
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

_ids = itertools.count(1)


@dataclass
class Answer:
    """What the fake provider will send for one request, format-independent."""

    id: str
    model: str
    text: str = ""
    thinking: str | None = None
    signature: str = ""
    tool_uses: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    input_tokens: int = 1
    output_tokens: int = 1
    cache_read: int = 0
    cache_write: int = 0
    status: int | None = None
    error_type: str | None = None
    message: str = ""
    retry_after: float | None = None
    delay: float = 0.0
    event_delay: float = 0.0
    cut_after: int | None = None
    malformed: bool = False
    stream_error: str | None = None
    pieces: int = 3
    interleave: bool = False
    echo_auth: bool = False


KNOWN_KEYS = {"text", "echo", "thinking", "signature", "tool_uses", "tool_use", "stop_reason", "input_tokens",
              "output_tokens", "cache_read", "cache_write", "status", "error_type", "message", "retry_after",
              "delay", "event_delay", "cut_after", "malformed", "stream_error", "id", "pieces", "interleave",
              "echo_auth"}


def check_step(step: Any) -> None:
    """Raises ``ValueError`` for a step that is neither a callable nor a dict of known keys."""
    if callable(step):
        return
    if not isinstance(step, dict):
        raise ValueError(f"a fake provider step is a dict (or a callable), not {step!r}")
    unknown = set(step) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in fake provider step {step!r}; "
                         f"allowed: {sorted(KNOWN_KEYS)}")


def make_answer(step: dict[str, Any], *, model: str, prompt_chars: int, last_user_text: str) -> Answer:
    """The answer a step describes, with ids and token counts filled in."""
    check_step(step)
    n = next(_ids)
    calls = list(step.get("tool_uses") or ([step["tool_use"]] if step.get("tool_use") else []))
    tool_uses = [{"id": c.get("id") or f"toolu_fake_{n}_{i}", "name": c["name"], "input": c.get("input", {})}
                 for i, c in enumerate(calls)]
    text = last_user_text if step.get("echo") else str(step.get("text", ""))
    if not text and not tool_uses and step.get("thinking") is None and "status" not in step:
        text = "ok"
    cache_read, cache_write = int(step.get("cache_read", 0)), int(step.get("cache_write", 0))
    answer_chars = len(text) + len(step.get("thinking") or "") + len(json.dumps(tool_uses))
    return Answer(
        id=str(step.get("id") or f"msg_fake_{n}"),
        model=model,
        text=text,
        thinking=step.get("thinking"),
        signature=str(step.get("signature", f"sig_fake_{n}")),
        tool_uses=tool_uses,
        stop_reason=step.get("stop_reason") or ("tool_use" if tool_uses else "end_turn"),
        input_tokens=int(step.get("input_tokens", max(1, prompt_chars // 4 - cache_read - cache_write))),
        output_tokens=int(step.get("output_tokens", max(1, answer_chars // 4))),
        cache_read=cache_read,
        cache_write=cache_write,
        status=step.get("status"),
        error_type=step.get("error_type"),
        message=str(step.get("message", "")),
        retry_after=step.get("retry_after"),
        delay=float(step.get("delay", 0.0)),
        event_delay=float(step.get("event_delay", 0.0)),
        cut_after=step.get("cut_after"),
        malformed=bool(step.get("malformed", False)),
        stream_error=step.get("stream_error"),
        pieces=int(step.get("pieces", 3)),
        interleave=bool(step.get("interleave", False)),
        echo_auth=bool(step.get("echo_auth", False)),
    )


def split(text: str, parts: int = 3, *, keep_empty: bool = False) -> list[str]:
    """``text`` in up to ``parts`` consecutive pieces, so streams carry several deltas."""
    if not text:
        return [""] if keep_empty else []
    size = max(1, -(-len(text) // parts))
    return [text[i:i + size] for i in range(0, len(text), size)]


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message (both formats put it in ``text`` parts or a plain string)."""
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        texts = [p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text"]
        if texts:
            return "".join(texts)
    return ""
