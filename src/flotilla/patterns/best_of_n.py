"""Best-of-N for text (Self-MoA): sample one model N times, then aggregate the samples into one answer.

Self-MoA (Li et al. 2025, arXiv 2502.00674) found that aggregating several samples of the single best
model beats mixing in weaker models. Three ways to aggregate:

- ``self-moa``: one call of the aggregator (the same model, or ``aggregator=``) synthesises one answer
  from all N samples;
- ``seq``: Self-MoA-Seq, a sliding window: the first ``window`` samples are synthesised into one, then
  that synthesis and the next ``window - 1`` samples, and so on, so N may exceed what one prompt holds;
- ``judge``: the aggregator picks the best sample and says why (answer as JSON); the picked sample's
  text is the answer, unchanged.

The samples run concurrently, at most ``parallel`` at once. Each sample and each aggregation call is a
child run of the ``ask`` run in the store (``sample`` / ``aggregate``), so ``flotilla show`` lists the
usage and cost of every one; the outcome carries the same figures. A sample that fails (after retries
and fallbacks) is left out of the aggregation and said; when every sample fails the error is raised.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import RunError, UserError
from ..events import FanOut
from ..messages import Message, MessagesRequest
from ..models.meter import Meter
from ._judge import json_objects

AGGREGATES = ("self-moa", "seq", "judge")

SYNTHESIZE = """You are given several candidate responses to the user's request below, all written \
independently. Synthesise them into one response of the highest quality: weigh them critically, since \
some may be wrong or incomplete; keep what is correct and well said, drop what is not, and resolve \
disagreements on the merits. Do not mention the candidates or that you are combining them: answer the \
request directly."""

JUDGE = """You are given several candidate responses to the user's request below, all written \
independently. Pick the single best one: the most correct, complete and clear. Answer with ONLY a JSON \
object and nothing else: {"pick": <the candidate's number>, "reason": "<one or two sentences>"}"""

JUDGE_RETRY = 'That was not the JSON object asked for. Answer with ONLY {"pick": <number>, "reason": "<text>"}.'


@dataclass
class Call:
    """One model call of a best-of-N ask: a sample or an aggregation step, with its accounting."""

    run_id: str
    role: str
    """``sample`` or ``aggregate``."""
    model: str
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    inputs: list[int] = field(default_factory=list)
    """For an aggregation step: the samples (1-based) it read; 0 stands for the previous synthesis."""


@dataclass
class SampledAnswer:
    """What ``Session.ask(..., samples=N)`` returns: the answer, every sample, every aggregation step."""

    run_id: str
    text: str
    aggregate: str
    samples: list[Call]
    aggregation: list[Call]
    picked: int | None = None
    """For ``judge``: the sample (1-based) chosen."""
    reason: str = ""
    """How the answer was reached (the judge's reason, or which samples were synthesised)."""

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.samples + self.aggregation)

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.samples + self.aggregation)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.samples + self.aggregation)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampledAnswer:
        return cls(data["run_id"], data["text"], data["aggregate"], [Call(**c) for c in data["samples"]],
                   [Call(**c) for c in data["aggregation"]], picked=data.get("picked"), reason=data.get("reason", ""))

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "text": self.text, "aggregate": self.aggregate, "picked": self.picked,
                "reason": self.reason, "cost_usd": self.cost_usd, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "samples": [asdict(c) for c in self.samples],
                "aggregation": [asdict(c) for c in self.aggregation]}


def check_options(samples: int, aggregate: str, window: int, parallel: int) -> None:
    if samples < 1:
        raise UserError(f"--samples must be at least 1 (got {samples})")
    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate must be one of {', '.join(AGGREGATES)}, not {aggregate!r}")
    if window < 2:
        raise UserError(f"--window must be at least 2 (got {window}): a window compares samples")
    if parallel < 1:
        raise UserError(f"--parallel must be at least 1 (got {parallel})")


def candidates_prompt(prompt: str, texts: list[tuple[str, str]]) -> str:
    """The aggregator's user message: the request, then each candidate under its label."""
    parts = [f"<request>\n{prompt}\n</request>"]
    parts += [f'<candidate number="{label}">\n{text}\n</candidate>' for label, text in texts]
    return "\n\n".join(parts)


def parse_pick(text: str, numbers: list[int]) -> tuple[int, str] | None:
    """``(pick, reason)`` from a judge's answer (bare JSON or JSON in prose), or None when it is not
    JSON or picks a number not among ``numbers``."""
    for data in json_objects(text):
        pick = data.get("pick")
        if isinstance(pick, int) and not isinstance(pick, bool) and pick in numbers:
            return pick, str(data.get("reason", ""))
    return None


class _Caller:
    """Makes one recorded model call as a child run of the ask run: its own stack, sink and meter."""

    def __init__(self, session: Any, run_id: str, fallback: list[str], max_tokens: int) -> None:
        self.session, self.run_id, self.fallback, self.max_tokens = session, run_id, fallback, max_tokens

    async def __call__(self, role: str, title: str, model: str, system: str | None,
                       messages: list[Message], inputs: list[int] | None = None) -> Call:
        from ..agents.wiring import stacked_model

        s = self.session
        child = s.store.create_run(role, title, parent_id=self.run_id, meta={"model": model})
        meter = Meter()
        stack = stacked_model(s.build_model, model, self.fallback, catalog=s.catalog,
                              sink=FanOut(s.store, s.sink), run_id=child, role=role, meter=meter, budget_usd=None)
        call = Call(run_id=child, role=role, model=model, inputs=list(inputs or []))
        try:
            response = await stack.request(MessagesRequest(model=model, system=system, max_tokens=self.max_tokens,
                                                           messages=messages))
            call.text = response.text()
        except RunError as exc:
            call.error = str(exc)
        call.input_tokens = meter.input_tokens + meter.cache_read_tokens + meter.cache_write_tokens
        call.output_tokens, call.cost_usd = meter.output_tokens, meter.usd
        s.store.finish_run(child, "failed" if call.error else "done", call.error or "", result={"text": call.text})
        return call


async def ask_sampled(session: Any, model: str, prompt: str, *, samples: int, aggregate: str = "self-moa",
                      aggregator: str | None = None, system: str | None = None, max_tokens: int = 1024,
                      fallback: list[str] | None = None, window: int = 3, parallel: int = 4) -> SampledAnswer:
    """Samples ``model`` ``samples`` times on ``prompt`` and aggregates the answers (see the module)."""
    check_options(samples, aggregate, window, parallel)
    catalog = session.catalog
    aggregator = catalog.resolve(aggregator) if aggregator else model
    for name in {model, aggregator}:
        if name not in session._models:
            session.build_model(name)  # a missing key or unknown model fails before anything is recorded
    run_id = session.store.create_run("ask", prompt[:80], meta={
        "model": model, "samples": samples, "aggregate": aggregate, "aggregator": aggregator})
    call = _Caller(session, run_id, list(fallback or []), max_tokens)
    gate = asyncio.Semaphore(parallel)

    async def sample(i: int) -> Call:
        async with gate:
            return await call("sample", f"sample {i}", model, system, [Message(role="user", content=prompt)])

    try:
        drawn = list(await asyncio.gather(*(sample(i + 1) for i in range(samples))))
        usable = [(str(i + 1), c.text) for i, c in enumerate(drawn) if c.error is None]
        if not usable:
            raise RunError(f"every one of the {samples} samples failed; the first: {drawn[0].error}")
        answer = SampledAnswer(run_id, "", aggregate, drawn, [])
        if len(usable) == 1:
            answer.text, answer.picked = usable[0][1], int(usable[0][0])
            answer.reason = "only one sample answered; nothing to aggregate"
        elif aggregate == "judge":
            await _judge(call, aggregator, prompt, usable, answer)
        else:
            await _synthesise(call, aggregator, prompt, usable, answer, window if aggregate == "seq" else len(usable))
    except BaseException as exc:
        session.store.finish_run(run_id, "failed", str(exc))
        raise
    session.store.finish_run(run_id, "done", answer.reason, result=answer.to_dict())
    return answer


async def _synthesise(call: _Caller, aggregator: str, prompt: str, usable: list[tuple[str, str]],
                      answer: SampledAnswer, window: int) -> None:
    """Self-MoA (one window holding every sample) or Self-MoA-Seq (windows of ``window``, the running
    synthesis carried into the next window as candidate 0)."""
    pending = list(usable)
    carried: str | None = None
    step = 0
    while pending:
        take = window if carried is None else window - 1
        batch, pending = pending[:take], pending[take:]
        shown = ([("0", carried)] if carried is not None else []) + batch
        step += 1
        done = await call("aggregate", f"aggregate {step}", aggregator, SYNTHESIZE,
                          [Message(role="user", content=candidates_prompt(prompt, shown))],
                          inputs=[int(label) for label, _ in shown])
        answer.aggregation.append(done)
        if done.error is not None:  # keep the best we have rather than lose every sample's work
            carried = carried if carried is not None else batch[0][1]
            answer.reason = f"aggregation step {step} failed ({done.error}); kept the synthesis so far"
            break
        carried = done.text
    answer.text = carried or ""
    if not answer.reason:
        names = ", ".join(label for label, _ in usable)
        answer.reason = (f"{aggregator} synthesised samples {names}" if step == 1
                         else f"{aggregator} synthesised samples {names} in {step} windows of up to {window}")


async def _judge(call: _Caller, aggregator: str, prompt: str, usable: list[tuple[str, str]],
                 answer: SampledAnswer) -> None:
    """The aggregator picks one sample by number; bad JSON is asked for again once, then sample 1 stands."""
    messages = [Message(role="user", content=candidates_prompt(prompt, usable))]
    for attempt in range(2):
        done = await call("aggregate", "judge", aggregator, JUDGE, messages,
                          inputs=[int(label) for label, _ in usable])
        answer.aggregation.append(done)
        found = parse_pick(done.text, [int(label) for label, _ in usable]) if done.error is None else None
        if found is not None:
            answer.picked, reason = found
            answer.text = dict(usable)[str(answer.picked)]
            answer.reason = f"{aggregator} picked sample {answer.picked}: {reason}"
            return
        if done.error is not None:
            break
        messages = [*messages, Message(role="assistant", content=done.text or "(empty)"),
                    Message(role="user", content=JUDGE_RETRY)]
    label, answer.text = usable[0]
    answer.picked = int(label)
    answer.reason = f"the judge gave no usable pick; sample {label} stands"
