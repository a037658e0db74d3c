"""``flotilla review``: a thin layer over ``Session.review``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ._console import make_console

out = make_console()
err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("review")(review)


def review(
    task: Optional[str] = typer.Argument(None, help="What the writer implements (omit with --branch)."),
    writer: Optional[str] = typer.Option(None, "--writer", help="The writer's model (fixes the findings too)."),
    reviewer: str = typer.Option(..., "--reviewer", help="The reviewer's model: best from another lab."),
    branch: Optional[str] = typer.Option(None, "--branch", help="Review this existing branch instead of writing."),
    base: str = typer.Option("HEAD", "--base", help="What the change is measured from (with --branch: main, say)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="Review rounds at most (default 3, [review] rounds)."),
    check: Optional[str] = typer.Option(None, "--check", help="Run on the branch after the writing and each fix."),
    block_severity: Optional[str] = typer.Option(None, "--block-severity", help="P0-P3: findings this bad block."),
    block_confidence: Optional[float] = typer.Option(None, "--block-confidence", help="…when at least this sure."),
    prove: bool = typer.Option(False, "--prove", help="A fix counts only when the writer's new test fails before "
                                                      "it and passes after (flotilla runs it both ways)."),
    agent: str = typer.Option("implementer", "--agent", help="The writer's flotilla agent."),
    reviewer_agent: str = typer.Option("reviewer", "--reviewer-agent", help="The reviewer's agent (run read-only)."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="USD cap for the whole review."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help="Most model calls per agent run."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
    durable_run: bool = typer.Option(True, "--durable/--no-durable", help="Record every step so a crash resumes."),
) -> None:
    """One model writes, another reviews the diff, the writer fixes the blocking findings, until clean
    or --rounds. Nothing is merged: `flotilla merge RUN` is yours."""
    from ..patterns._review_report import render
    from ..session import Session

    from ..patterns.review import same_lab

    session = Session(project=Path.cwd(), durable=durable_run, store=store)
    warning = same_lab(session, writer, reviewer)
    if warning:  # said before the work starts, not after it
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    result = session.review_sync(task, writer=writer, reviewer=reviewer, branch=branch, base=base, rounds=rounds,
                                 check=check, block_severity=block_severity, block_confidence=block_confidence,
                                 prove=prove, agent=agent, reviewer_agent=reviewer_agent, budget_usd=budget_usd, max_turns=max_turns)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        out.print(render(result), highlight=False, markup=False)
    if result["status"] == "failed":
        raise SystemExit(1)
