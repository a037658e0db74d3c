"""``flotilla pipeline run/list``, ``flotilla approve`` and ``flotilla reject``: thin layers over the Session.

A gate answered from another process: when the process that ran the pipeline (or fan-out) up to its
gate has exited, ``approve`` continues the run here, in the foreground, from its last step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError
from ._console import make_console

out = make_console()
err = make_console(stderr=True)
pipeline_app = typer.Typer(help="Role pipelines: architect → implementers → tests → security review.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
    app.command("approve")(approve)
    app.command("reject")(reject)


@pipeline_app.command("run")
def run(
    args: list[str] = typer.Argument(..., metavar="[NAME] TASK",
                                     help="The pipeline (default: default) and the task."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model of every stage without its own."),
    stage_model: list[str] = typer.Option([], "--stage-model", help="STAGE=MODEL; repeat."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Approve at every gate without stopping."),
    check: Optional[str] = typer.Option(None, "--check", help="Run after each stage and each fix."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="USD cap for the whole pipeline."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help="Most model calls per agent run."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Run a pipeline. Without --yes it stops at its gate and this command exits; approve or reject later."""
    from ..patterns._pipeline_report import render, waiting
    from ..session import Session

    if len(args) > 2:
        raise UserError("give [NAME] TASK: quote the task (flotilla pipeline run default \"Add a flag\")")
    name, task = (args[0], args[1]) if len(args) == 2 else ("default", args[0])
    models = {}
    for pair in stage_model:
        stage, eq, chosen = pair.partition("=")
        if not eq or not stage or not chosen:
            raise UserError(f"--stage-model takes STAGE=MODEL, not {pair!r}")
        models[stage] = chosen
    session = Session(project=Path.cwd(), store=store)
    result = session.pipeline_sync(task, name=name, model=model, models=models, yes=yes, detach=True, check=check,
                                   budget_usd=budget_usd, max_turns=max_turns)
    _show(result, as_json, render, waiting)


def _show(result: dict, as_json: bool, render, waiting) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        out.print(waiting(result) if result["status"] == "waiting" else render(result), highlight=False, markup=False)
    if result["status"] in ("failed", "rejected", "cancelled"):
        raise SystemExit(1)


@pipeline_app.command("list")
def list_pipelines(cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project.")) -> None:
    """The pipelines this project can run, with their stages."""
    from ..patterns import _pipeline_spec as spec_file
    from ..workspaces import open_repo

    root = open_repo((cwd or Path.cwd()).resolve()).root
    for name, where in spec_file.available(root).items():
        spec = spec_file.load(root, name)
        out.print(f"{name}  ({where})  {spec.description}", highlight=False, markup=False)
        out.print("  " + _order(spec.stage), highlight=False, markup=False)


def _order(stages: list) -> str:
    """The stages in order, a parallel group joined by ∥: ``architect [gate] → backend ∥ frontend → …``."""
    steps: list[list[str]] = []
    for i, s in enumerate(stages):
        name = s.name + (" [gate]" if s.gate else "")
        if s.group and i and stages[i - 1].group == s.group:
            steps[-1].append(name)
        else:
            steps.append([name])
    return " → ".join(" ∥ ".join(step) for step in steps)


def approve(run: str = typer.Argument(..., help="The run waiting at its gate (`flotilla runs` says which)."),
            note: str = typer.Option("", "--note", help="A note the next stages are given with the plan."),
            reject_it: bool = typer.Option(False, "--reject", help="Refuse instead (as `flotilla reject`)."),
            as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
            store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
            cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to read.")) -> None:
    """Approve what a run waits for (a pipeline's plan, a fan-out's); it continues."""
    _answer(run, not reject_it, note, as_json, cwd, store)


def reject(run: str = typer.Argument(..., help="The run waiting at its gate."),
           reason: str = typer.Option(..., "--reason", help="Why: stored with the run."),
           as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
           store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
           cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to read.")) -> None:
    """Refuse what a run waits for: it ends, nothing more is spent."""
    _answer(run, False, reason, as_json, cwd, store)


def _answer(run: str, approved: bool, text: str, as_json: bool, cwd: Optional[Path], store: Optional[str]) -> None:
    from ..errors import UserError
    from ..patterns._pipeline_report import render, waiting
    from ..session import Session
    from ..store import store_location
    from .durable_cmd import durable_states

    project = (cwd or Path.cwd()).resolve()
    where = store_location(store, root=project)
    if not where.is_file():  # answering reads: no store is made where none was
        raise UserError(f"no run {run!r}: {where} does not exist (nothing has run here yet)")
    reading = Session(project=project, durable=False, store=str(where))
    record = reading.store.get_run(run)
    (reading.approve if approved else reading.reject)(record["id"], text)
    said = "approved" if approved else "rejected"
    if durable_states(reading.store.path, [record["id"]]).get(record["id"]) != "resumable":
        out.print(f"{said}: {record['id']} (it continues in the process running it)", highlight=False)
        return
    err.print(f"{said}: {record['id']}; continuing it here", highlight=False)
    session = Session(project=project, store=str(where))
    result = session.resume_sync(record["id"])
    if record["kind"] == "pipeline":
        _show(result, as_json, render, waiting)
    else:
        out.print(f"run {record['id']}: {result.get('status')} {result.get('reason') or ''}", highlight=False)
