"""``flotilla ask --samples N``: best-of-N through the Session, the answer on stdout, the accounting on stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table
from ._console import make_console

err = make_console(stderr=True)


def ask_sampled(model: str, prompt: str, *, as_json: bool, **options: Any) -> None:
    from ..session import Session

    session = Session(project=Path.cwd(), durable=False)
    answer = session.ask_sync(model, prompt, **options)
    if as_json:
        print(json.dumps(answer.to_dict(), indent=2))
        return
    print(answer.text if answer.text.endswith("\n") else answer.text + "\n", end="")
    err.print(accounting(answer))
    err.print(answer.reason, style="dim", highlight=False, markup=False)


def accounting(answer: Any) -> Table:
    """One row per sample and per aggregation call, then the total (also what ``flotilla show`` prints)."""
    table = Table("call", "model", "in", "out", "cost", "note", box=None, pad_edge=False,
                  title=f"best-of-{len(answer.samples)} ({answer.aggregate})", title_justify="left")
    for i, call in enumerate(answer.samples, 1):
        note = call.error or ("picked" if answer.picked == i else "")
        table.add_row(f"sample {i}", call.model, f"{call.input_tokens:,}", f"{call.output_tokens:,}",
                      f"${call.cost_usd:.6f}", note[:80])
    for call in answer.aggregation:
        reads = ", ".join("synthesis" if i == 0 else str(i) for i in call.inputs)
        table.add_row("aggregate", call.model, f"{call.input_tokens:,}", f"{call.output_tokens:,}",
                      f"${call.cost_usd:.6f}", (call.error or f"read {reads}")[:80])
    calls = len(answer.samples) + len(answer.aggregation)
    table.add_row(f"total: {calls} calls", "", f"{answer.input_tokens:,}", f"{answer.output_tokens:,}",
                  f"${answer.cost_usd:.6f}", "")
    return table


def sampled_report(result: dict[str, Any]) -> Any:
    """``flotilla show`` of a best-of-N ask: every sample's text, the aggregation's accounting and reasoning."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from ..patterns.best_of_n import SampledAnswer

    answer = SampledAnswer.from_dict(result)
    panels = [Panel(Text(c.error or c.text), title=f"sample {i}" + (" (picked)" if answer.picked == i else ""),
                    title_align="left") for i, c in enumerate(answer.samples, 1)]
    return Group(*panels, accounting(answer), Text(answer.reason, style="dim"),
                 Panel(Text(answer.text), title="answer", title_align="left"))
