"""``flotilla eval``: a task set with hidden checks through race configurations; the table, JSON or CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ..errors import UserError
from ._console import make_console

out = make_console()
err = make_console(stderr=True)

CSV_COLUMNS = ("config", "tasks", "skipped", "attempts", "pass@1", "any@N", "selected@N", "selector_loss",
               "pass@1_rate", "any@N_rate", "selected@N_rate", "selector_loss_rate", "cost_usd", "cost_per_task",
               "seconds_per_task", "extra_solved", "cost_per_extra_solved")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)


def eval_(
    tasks: Path = typer.Argument(..., help="A folder of tasks (each with task.toml, repo/, hidden/) or a .jsonl file."),
    config: list[Path] = typer.Option([], "--config", help="A race configuration (TOML); repeat to compare."),
    n: Optional[int] = typer.Option(None, "-n", help="Attempts per model where a configuration sets no samples."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="USD cap for the whole eval."),
    resume: Optional[str] = typer.Option(None, "--resume", help="An eval's id: go on where it stopped."),
    as_json: bool = typer.Option(False, "--json", help="Print the report (summary and every result) as JSON."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write the summary, one row per configuration."),
    png_path: Optional[Path] = typer.Option(None, "--png", help="Also draw pass rates against cost per task (PNG; "
                                                             "needs matplotlib: pip install 'flotilla[plot]')."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Run each task with each configuration: pass@1, any@N, selected@N, selector loss, cost per task."""
    from ..session import Session

    if png_path is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:  # before anything runs, not after the eval
            raise UserError("--png needs matplotlib: pip install 'flotilla[plot]' (or pip install matplotlib)")
    session = Session(project=Path.cwd(), durable=False, store=store)
    report = session.eval_sync(tasks, config, n=n, budget_usd=budget_usd, resume=resume,
                               on_result=None if as_json else _progress)
    if csv_path is not None:
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(report.summary)
    if png_path is not None:
        from ..patterns._eval_chart import write_chart

        write_chart(report.summary, png_path, title=f"flotilla eval {report.eval_id}")
        err.print(f"chart written to {png_path}", highlight=False)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    out.print(summary_table(report.summary, report.eval_id))


def _progress(result: dict[str, Any]) -> None:
    marks = " ".join(f"{a['name']}{'✓' if a['solved'] else '·' if a['visible'] else '✗'}" for a in result["attempts"])
    picked = result["winner"] or "none"
    err.print(f"{result['config']}/{result['task']}: {marks or result['reason']}  picked {picked}"
              f"{' (solves it)' if result['selected_solved'] else ''}", highlight=False)


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"


def summary_table(rows: list[dict[str, Any]], eval_id: str) -> Table:
    table = Table(title=f"eval {eval_id}", title_justify="left")
    for column in ("config", "tasks", "pass@1", "any@N", "selected@N", "selector loss", "cost/task", "time/task",
                   "cost per extra solved"):
        table.add_column(column, justify="left" if column == "config" else "right")
    for r in rows:
        def rate(key: str) -> str:
            return f"{r[key]}/{r['tasks']} ({r[key + '_rate']:.0%})"

        table.add_row(r["config"], str(r["tasks"]) + (f" (+{r['skipped']} skipped)" if r["skipped"] else ""),
                      rate("pass@1"), rate("any@N"), rate("selected@N"), rate("selector_loss"),
                      _usd(r["cost_per_task"]), f"{r['seconds_per_task']:.1f}s",
                      "—" if r["cost_per_extra_solved"] is None else _usd(r["cost_per_extra_solved"]))
    return table
