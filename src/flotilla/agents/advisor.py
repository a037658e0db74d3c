"""The advisor: a stronger model the executor consults at decision points.

It reads the executor's transcript (rendered as text), gets a fixed
instruction, has no tools, and answers briefly. The executor may ask through
the ``advisor`` tool; the loop also asks by itself:

- ``first_change``: before the executor's first file-changing tool call;
- ``repeated_error``: when the same failing command or error comes back a second time;
- ``before_done``: once, when the executor is about to end its turn.

Its usage is recorded with ``role="advisor"`` (by the model stack) under the
executor's run id; a cap bounds the consults of one run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import ProviderError
from ..events import AdvisorConsulted
from ..messages import Message, MessagesRequest, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock
from ..protocols import EventSink, Model
from ..protocols import Steps

log = logging.getLogger(__name__)

INSTRUCTION = """\
You are the advisor to a coding agent, the executor. You see its transcript: the task, what it \
did, what tools returned. You cannot use tools and you do not do the work; you advise.

Answer in a few short paragraphs or bullet points, at most a few hundred words:
- If its approach is sound, say so in one line and name the one risk most worth checking.
- If it is heading somewhere wrong, say what is wrong and what to do instead, concretely \
(files, commands, the next step).
- If it is stuck on a repeating error, diagnose the likely cause from the evidence and give the fix.
- If it is about to finish, check the work against the task: is every part done and verified \
by a command it actually ran? Name anything missing.
Do not repeat the transcript back. Be direct."""

TRIGGERS = {
    "first_change": "The executor is about to make its first change to files, with these calls:\n{detail}\n"
                    "Check its approach before it commits to it.",
    "repeated_error": "The same failure has now come back a second time:\n{detail}\nHelp it get unstuck.",
    "before_done": "The executor is about to end its turn with the message above. Is the task really "
                   "done and verified?",
    "tool": "The executor asks you: {detail}",
}

TOOL = ToolSpec(
    name="advisor",
    description=("Ask a stronger advisor model for guidance. It reads your whole transcript, so just ask "
                 "the question: a plan to check, a choice between approaches, an error you cannot explain. "
                 "It has no tools and answers briefly."),
    input_schema={"type": "object", "properties": {"question": {"type": "string",
                                                                "description": "What you want advice on."}}},
)


class AdvisorSettings(BaseModel):
    """The ``[advisor]`` table of flotilla's configuration."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = 700
    """The longest answer the advisor may give."""
    max_calls: int = 6
    """Consults per run, the executor's own questions included."""
    transcript_chars: int = 60_000
    """How much of the transcript the advisor reads (the task, then the most recent part)."""


class Advisor:
    """Consults one advisor model for one run and remembers which triggers have fired."""

    def __init__(self, model: Model, steps: Steps, sink: EventSink, run_id: str,
                 settings: AdvisorSettings | None = None) -> None:
        self.model = model
        self.steps = steps
        self.sink = sink
        self.run_id = run_id
        self.settings = settings or AdvisorSettings()
        self.calls = 0
        self.fired: set[str] = set()
        self._failures: Counter[str] = Counter()

    @property
    def available(self) -> bool:
        return self.calls < self.settings.max_calls

    def wants(self, trigger: str) -> bool:
        """Whether an automatic consult for a once-per-run ``trigger`` should happen now."""
        return self.available and trigger not in self.fired

    def repeated(self, tool: str, input: dict[str, Any], error: str) -> str | None:
        """Notes a failed tool call; returns a description when it (or its error) is now seen twice."""
        command = f"{tool} {json.dumps(input, sort_keys=True)}"
        keys = [f"call:{command}", f"error:{' '.join(error.split())[:300]}"]
        hit = False
        for key in keys:
            self._failures[key] += 1
            if self._failures[key] == 2 and key not in self.fired:
                self.fired.add(key)
                hit = True
        return f"{command}\n-> {error[:1000]}" if hit else None

    async def consult(self, trigger: str, transcript: list[Message], *, detail: str = "") -> str | None:
        """Asks the advisor; returns its advice, or None when the cap is reached or the call failed."""
        if not self.available:
            return None
        self.calls += 1
        self.fired.add(trigger)
        ask = TRIGGERS[trigger].format(detail=detail)
        text = render_transcript(transcript, self.settings.transcript_chars)
        request = MessagesRequest(
            model=self.model.name, system=INSTRUCTION, max_tokens=self.settings.max_tokens,
            messages=[Message(role="user", content=f"<transcript>\n{text}\n</transcript>\n\n{ask}")])
        try:
            response = await self.steps.model_call(f"advisor:{self.calls}", lambda: self.model.request(request))
        except ProviderError as exc:
            # An advisor outage must not end the executor's run; the executor goes on unadvised.
            log.warning("advisor %s failed (%s); continuing without advice", self.model.name, exc)
            return None
        advice = response.text().strip()
        self.sink.emit(AdvisorConsulted(run_id=self.run_id, trigger=trigger, advice=advice))
        return advice or None


def render_transcript(messages: list[Message], limit: int) -> str:
    """The conversation as plain text: the first message whole, then as much of the end as fits."""
    parts = [_render(m) for m in messages]
    if not parts:
        return ""
    head, tail, size = parts[0], [], len(parts[0])
    for part in reversed(parts[1:]):
        if size + len(part) > limit:
            tail.append("[… earlier messages left out …]")
            break
        tail.append(part)
        size += len(part)
    return "\n\n".join([head, *reversed(tail)])


def _render(message: Message) -> str:
    lines = []
    for block in message.blocks():
        if isinstance(block, TextBlock):
            lines.append(block.text)
        elif isinstance(block, ToolUseBlock):
            lines.append(f"[calls {block.name}] {json.dumps(block.input)[:2000]}")
        elif isinstance(block, ToolResultBlock):
            mark = " (error)" if block.is_error else ""
            lines.append(f"[tool result{mark}] {block.text()[:3000]}")
    return f"## {message.role}\n" + "\n".join(lines)
