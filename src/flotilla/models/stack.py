"""The whole wrapper stack around concrete models, in the one order that makes sense.

    Budget                                    outermost: reserves a call's bound, or refuses, before it starts
      └── Fallback(primary, *fallbacks)       across the chain, sticky until reset() starts a new turn
            └── Retry(Usage(model))  × each   retry per model; Usage innermost records every real call

Usage sits innermost so that each real call (every retry, every fallback
attempt, every failure) becomes one ``ModelCalled`` event and adds to the
meter that ``Budget`` reads. Keyword options a call carries beyond the
request (the adapters' ``headers=``) pass through every wrapper untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..protocols import EventSink, Model
from .budget import Budget, Meter
from .catalog import Catalog
from .fallback import Fallback
from .retry import Retry, RetryPolicy
from .usage import Usage


def build_stack(primary: Model, *, fallbacks: Sequence[Model] = (), catalog: Catalog,
                sink: EventSink | None = None, run_id: str | None = None, role: str = "executor",
                meter: Meter | None = None, budget_usd: float | None = None,
                budget_tokens: int | None = None, retry: RetryPolicy | None = RetryPolicy(),
                on_rate_limit: bool = False) -> Budget:
    """Wraps ``primary`` (and its ``fallbacks``) in usage accounting, retry, fallback and budget.

    Pass one ``meter`` to every stack of a run (executor, advisor, subagents)
    so that they share one budget; without one, the stack gets its own, at
    ``stack.meter``. ``retry=None`` turns retrying off.

    A fallback lasts the turn: once a later model of the chain has answered,
    the stack stays on it until ``reset()``, and the next call after a reset
    tries the primary again. The agent loop calls ``reset()`` before each of
    its model calls (a turn is one model call, as ``max_turns`` counts them),
    so one overload does not pin the fallback for the rest of a run.
    """
    meter = meter if meter is not None else Meter()
    chain = [Usage(m, catalog, sink, run_id, role, meter) for m in (primary, *fallbacks)]
    fallback = Fallback(chain[0], chain[1:], on_rate_limit=on_rate_limit, sink=sink, run_id=run_id)
    if retry is not None:
        # A model with a fallback after it hands the errors the fallback handles (529, 5xx,
        # timeouts, connection errors) straight on instead of retrying them: an overloaded
        # provider's backoff costs seconds to minutes, while the next model answers now, and the
        # fallback is sticky so the overloaded one is not hit again this turn. What the fallback
        # does not handle (429 unless on_rate_limit, 409) is still retried here, honouring
        # retry-after. The last model in the chain has nothing after it and retries everything.
        last = len(chain) - 1
        fallback.models = [
            Retry(m, retry, hand_over=fallback.falls_back if i < last else None)
            for i, m in enumerate(chain)
        ]
    return Budget(fallback, meter, budget_usd, budget_tokens, catalog=catalog,
                  priced_as=[m.name for m in (primary, *fallbacks)])
