"""``flotilla fanout``, ``approve`` and ``demo fanout``: a thin layer over ``Session.fanout``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import UserError
from ._console import make_console

out = make_console()
err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("fanout")(fanout)


def fanout(
    job: str = typer.Argument(..., help="The job, in words: what to audit, fix and prove."),
    lead: Optional[str] = typer.Option(None, "--lead", help="The lead's model (default: the configured model)."),
    model: list[str] = typer.Option([], "--model", "-m", help="A worker model; repeat: slices take them in turn."),
    agent: str = typer.Option("implementer", "--agent", help="The flotilla agent every worker runs."),
    max_slices: int = typer.Option(8, "--max-slices", help="Most slices the lead may plan."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Workers running at once (default: all)."),
    check: Optional[str] = typer.Option(None, "--check", help="Run on each slice's branch and after each merge."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="USD cap for the whole fan-out, lead included."),
    slice_budget_usd: Optional[float] = typer.Option(None, "--slice-budget-usd", help="USD cap for each slice."),
    plan_only: bool = typer.Option(False, "--plan-only", help="Stop once the plan is made and shown."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run the plan without asking."),
    pick: str = typer.Option("auto", "--pick", help="auto: merge the integration branch; manual: `flotilla merge RUN`."),
    base: str = typer.Option("HEAD", "--base", help="The ref the slices start from."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help="Most model calls per agent run."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
    durable_run: bool = typer.Option(True, "--durable/--no-durable",
                                     help="Record every step so a crash resumes (`flotilla resume RUN`)."),
) -> None:
    """A read-only lead splits a job into slices; workers do and prove each; proven slices merge one by one."""
    from ..patterns._fanout_report import as_json as to_json, render
    from ..session import Session

    if not (yes or plan_only) and not sys.stdin.isatty():
        raise UserError("a fan-out's plan needs your approval and there is no terminal to ask on: "
                        "pass --yes to run the plan without asking, or --plan-only to see it first")
    session = Session(project=Path.cwd(), durable=durable_run, store=store)
    result = session.fanout_sync(job, lead=lead, models=model, agent=agent, max_slices=max_slices, parallel=parallel,
                                 check=check, budget_usd=budget_usd, slice_budget_usd=slice_budget_usd,
                                 plan_only=plan_only, yes=yes, pick=pick, base=base, max_turns=max_turns,
                                 approve=None if (yes or plan_only) else _ask)
    if as_json:
        print(to_json(result))
    elif result["status"] == "planned":
        from ..patterns._fanout_plan import plan_table

        out.print(plan_table(result["plan"]), highlight=False, markup=False)
        out.print(f"planned only: run it with `flotilla fanout ... --yes` (run {result['fanout_id']})", highlight=False)
    else:
        out.print(render(result), highlight=False, markup=False)
    if result["status"] in ("failed", "rejected", "cancelled"):
        raise SystemExit(1)


def _ask(slices: list[dict[str, Any]]) -> bool:
    from ..patterns._fanout_plan import plan_table

    err.print(plan_table(slices), highlight=False, markup=False)
    return typer.confirm(f"Run these {len(slices)} slices?", default=False, err=True)


def demo_fanout(keep: bool) -> int:
    from ..demo_fanout import run_fanout_demo

    return run_fanout_demo(out, keep=keep)

