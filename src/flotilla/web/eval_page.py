"""An eval's page: per configuration pass@1, any@N, selected@N and the selector loss (what a better pick
would have won), cost and time per task; then each (configuration, task) pair."""

from __future__ import annotations

from typing import Any

from ._charts import bars
from ._html import Safe, h, join
from ._layout import duration, money, table


def board(run: dict[str, Any]) -> Safe:
    result = run["result"] or {}
    summary = result.get("summary") or []
    if not summary:
        return Safe("")

    def rate(row: dict[str, Any], key: str) -> str:
        return f"{row[key]}/{row['tasks']} ({row[f'{key}_rate']:.0%})"

    rows = [[s["config"], s["tasks"], rate(s, "pass@1"), rate(s, "any@N"), rate(s, "selected@N"),
             rate(s, "selector_loss"), money(s.get("cost_per_task")), duration(s.get("seconds_per_task") or 0.0)]
            for s in summary]
    pairs = [[r.get("config", ""), r.get("task", ""), r.get("status", ""), _yes(r.get("first_solved")),
              _yes(r.get("any_solved")), _yes(r.get("selected_solved")), len(r.get("attempts") or []),
              money(r.get("cost_usd")), duration(r.get("seconds") or 0.0)] for r in result.get("results", [])]
    chart = bars("selected@N by configuration", [(s["config"], float(s["selected@N"])) for s in summary])
    return join([h('<section class="board"><h2>configurations</h2>{t}{c}</section>', c=chart,
                   t=table(["config", "tasks", "pass@1", "any@N", "selected@N", "selector loss", "cost / task",
                            "time / task"], rows)),
                 h("<section><h2>tasks</h2>{t}</section>", t=table(
                     ["config", "task", "status", "first solved", "any solved", "selected solved", "attempts",
                      "cost", "time"], pairs))])


def _yes(value: Any) -> str:
    return "✓" if value else "✗" if value is not None else "—"
