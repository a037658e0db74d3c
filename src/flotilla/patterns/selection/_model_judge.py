"""The ``Judge`` the race gives its strategies: a model scoring one diff (``_judge.judge_diff``) or comparing
two attempts' summaries and diffs, each answer JSON, bad JSON asked for again once."""

from __future__ import annotations

from typing import Any

from ...errors import RunError
from ...messages import Message, MessagesRequest
from .._judge import MAX_DIFF_CHARS, Verdict, judge_diff, json_objects
from ._types import Candidate

COMPARE = """You compare two attempts, A and B, at one coding task. Each comes with its author's summary and \
its diff; both passed the project's visible check, which may be weaker than the task asks. Decide which \
attempt does the task better: correct in the cases the task implies (not only the ones tested), simpler, \
no unrelated changes, no gaming of the checks. Answer with ONLY a JSON object and nothing else: \
{"better": "A" or "B", "reason": "<one or two sentences>"}"""

RETRY = 'That was not the JSON object asked for. Answer with ONLY {"better": "A" or "B", "reason": "<text>"}.'


def parse_better(text: str) -> tuple[int, str] | None:
    """``(0 for A, 1 for B, reason)`` from a comparison answer, or None when unusable."""
    for data in json_objects(text):
        better = str(data.get("better", "")).strip().upper()
        if better in ("A", "B"):
            return "AB".index(better), str(data.get("reason", ""))
    return None


def _shown(c: Candidate, label: str) -> str:
    limit = MAX_DIFF_CHARS // 2
    diff = c.diff if len(c.diff) <= limit else c.diff[:limit] + "\n… (diff truncated)"
    return f'<attempt label="{label}">\n<summary>\n{c.summary.strip() or "(none)"}\n</summary>\n' \
           f"<diff>\n{diff}\n</diff>\n</attempt>"


class ModelJudge:
    """Judges with ``model`` against ``spec``; ``cost(model_name, usage)`` prices each call."""

    def __init__(self, model: Any, spec: str, cost: Any) -> None:
        self.model, self.spec, self.cost = model, spec, cost

    async def score(self, candidate: Candidate) -> Verdict:
        return await judge_diff(self.model, self.spec, candidate.diff, cost=self.cost)

    async def compare(self, first: Candidate, second: Candidate) -> tuple[int | None, str, float, int]:
        content = f"<task>\n{self.spec}\n</task>\n\n{_shown(first, 'A')}\n\n{_shown(second, 'B')}"
        messages = [Message(role="user", content=content)]
        spent, reason = 0.0, "no valid JSON twice"
        for calls in (1, 2):
            request = MessagesRequest(model=self.model.name, system=COMPARE, messages=messages, max_tokens=600)
            try:
                response = await self.model.request(request)
            except (RunError, AssertionError) as exc:  # a failed call is no verdict, not a failed race
                return None, f"judge call failed: {exc}", spent, calls
            spent += self.cost(self.model.name, response.usage)
            found = parse_better(response.text())
            if found is not None:
                return found[0], found[1], spent, calls
            messages = [*messages, Message(role="assistant", content=response.text() or "(empty)"),
                        Message(role="user", content=RETRY)]
        return None, reason, spent, 2
