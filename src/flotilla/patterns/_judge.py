"""The judge: a model scores one attempt's diff against the spec, as JSON.

Bad JSON is asked for again once; a second failure (or a failed call) is
recorded as "no score", never a crash of the race.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import RunError
from ..messages import Message, MessagesRequest

MAX_DIFF_CHARS = 60_000

RUBRIC = """You judge one attempt at a coding task. You get the task and the attempt's diff.
Score it from 0 to 10:
- 10: does exactly what the task asks, correctly, in the simplest way, tests included where fitting;
- 6: does it, with rough edges (extra changes, missing edge cases, weak tests);
- 3: partly does it, or does it in a way that would have to be redone;
- 0: does not do it, breaks something, or games the checks (e.g. deletes or skips tests).
Answer with ONLY a JSON object and nothing else: {"score": <0-10>, "reasons": "<one or two sentences>"}"""

RETRY = ("That was not the JSON object asked for. Answer with ONLY "
         '{"score": <number 0-10>, "reasons": "<text>"} and nothing else.')


@dataclass
class Verdict:
    score: float | None
    """0–10, or None when the judge gave no usable answer."""
    reasons: str
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    """Model calls the verdict took (a second one when the first answer was not JSON)."""


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects a model's answer may hold: the whole answer (bare or in a code fence), then each
    ``{…}`` in its prose, in order. Every judge's answer is read through this."""
    for candidate in [text.strip(), *re.findall(r"\{.*?\}", text, re.S)]:
        try:
            data = json.loads(candidate.strip().removeprefix("```json").strip("`"))
        except ValueError:
            continue
        if isinstance(data, dict):
            yield data


def parse_verdict(text: str) -> Verdict | None:
    """The verdict in a judge's answer (bare JSON, or JSON in a code fence or prose), or None."""
    for data in json_objects(text):
        if isinstance(data.get("score"), (int, float)) and not isinstance(
                data.get("score"), bool):
            score = float(data["score"])
            if 0 <= score <= 10:
                reasons = data.get("reasons", "")
                if isinstance(reasons, list):
                    reasons = "; ".join(map(str, reasons))
                return Verdict(score=score, reasons=str(reasons))
    return None


async def judge_diff(model: Any, spec: str, diff: str, *, cost: Any = None) -> Verdict:
    """Asks ``model`` to score ``diff`` against ``spec``; ``cost(model_name, usage)`` prices each call."""
    if not diff.strip():
        return Verdict(score=0.0, reasons="the attempt changed nothing")
    shown = diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n… (diff truncated)"
    messages = [Message(role="user", content=f"<task>\n{spec}\n</task>\n\n<diff>\n{shown}\n</diff>")]
    spent, tokens_in, tokens_out = 0.0, 0, 0
    for attempt in range(2):
        request = MessagesRequest(model=getattr(model, "name", "judge"), system=RUBRIC, messages=messages,
                                  max_tokens=600)
        try:
            response = await model.request(request)
        except (RunError, AssertionError) as exc:  # a failed judge call is no score, not a failed race
            return Verdict(score=None, reasons=f"judge call failed: {exc}", cost_usd=spent,
                           input_tokens=tokens_in, output_tokens=tokens_out, calls=attempt + 1)
        calls = attempt + 1
        if cost is not None:
            spent += cost(model.name, response.usage)
        tokens_in += response.usage.input_tokens
        tokens_out += response.usage.output_tokens
        verdict = parse_verdict(response.text())
        if verdict is not None:
            verdict.cost_usd, verdict.input_tokens, verdict.output_tokens = spent, tokens_in, tokens_out
            verdict.calls = calls
            return verdict
        if attempt == 0:
            messages = [*messages, Message(role="assistant", content=response.text() or "(empty)"),
                        Message(role="user", content=RETRY)]
    return Verdict(score=None, reasons="no score: the judge did not answer with valid JSON twice",
                   cost_usd=spent, input_tokens=tokens_in, output_tokens=tokens_out, calls=2)
