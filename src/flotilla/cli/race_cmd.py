"""``flotilla race``, ``merge``, ``diff``, ``gc`` and ``demo``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from ..errors import UserError
from ..events import FanOut
from ._console import make_console
from ._sandbox_flag import choose_sandbox, sandbox_option

out = make_console()
err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("race")(race)
    app.command("merge")(merge)
    app.command("diff")(diff)
    app.command("gc")(gc)
    app.command("demo")(demo)


def race(
    spec: Optional[str] = typer.Argument(None, help="What to do, in words (or --spec-file)."),
    model: list[str] = typer.Option([], "--model", "-m", help="A model to race; repeat for several."),
    n: int = typer.Option(1, "--samples", "-n",
                          help="Attempts per model: best-of-N is one model with --samples N (-n N is the same)."),
    check: Optional[str] = typer.Option(None, "--check", help="The command that verifies an attempt, e.g. 'pytest -q'."),
    agent: str = typer.Option("implementer", "--agent",
                              help="A flotilla agent, or claude-code|codex|gemini|aider|cmd:'TEMPLATE'."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Attempts running at once (default: all)."),
    spec_file: Optional[Path] = typer.Option(None, "--spec-file", help="Read the spec from a file."),
    base: str = typer.Option("HEAD", "--base", help="The ref the attempts start from."),
    judge: Optional[str] = typer.Option(None, "--judge", help="A model that scores each passing diff."),
    pick: str = typer.Option("auto", "--pick", help="auto: merge the winner; manual: leave it for `flotilla merge`."),
    select: Optional[str] = typer.Option(None, "--select",
                                         help="How the winner is picked: checks, checks+judge, pairwise (both need "
                                              "--judge), vote. Default: checks+judge with --judge, else checks."),
    keep: bool = typer.Option(False, "--keep", help="Keep every worktree and branch."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="USD cap for the whole race."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Approve tool calls that `ask` permission rules hold "
                             "for a person (unattended, they are refused)."),
    allow_dirty: bool = typer.Option(False, "--allow-dirty", help="Race from HEAD despite uncommitted changes."),
    fallback_model: Optional[str] = typer.Option(None, "--fallback-model", help="Fallback models, comma-separated."),
    setup: Optional[str] = typer.Option(None, "--setup", help="A command run in each worktree first."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
    durable_run: bool = typer.Option(True, "--durable/--no-durable",
                                     help="Record every step so a crash resumes (`flotilla resume RACE`)."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1,
                                            help="Most model calls each of flotilla's own attempts may make "
                                                 "(default: [limits] max_turns, 100)."),
    attempt_timeout: Optional[float] = typer.Option(None, "--attempt-timeout", min=1,
                                                    help="Wall-clock seconds each attempt may take, own or external "
                                                         "(default: [limits] wall_clock_s, 1800)."),
    queue: bool = typer.Option(False, "--queue", help="Enqueue the attempts for `flotilla worker` processes."),
    remote: Optional[str] = typer.Option(
        None, "--remote", help="The git remote workers share (default: \\[worker] remote in flotilla.toml)."),
    sandbox: Optional[str] = sandbox_option(),
    review_with: Optional[str] = typer.Option(None, "--review-with", help="A reviewer model: the winner goes "
                                              "through the findings loop before it is offered for merge."),
) -> None:
    """Race one spec across models in git worktrees; verify, rank, merge the winner."""
    from ..patterns._preflight import preflight
    from ..patterns._race_select import choose_strategy
    from ..patterns._race_plan import estimate_line
    from ..patterns._race_report import LiveView, outcome_view, stopped_line
    from ..patterns.race import build_plans, estimate, race_config
    from ..session import Session
    from ..workspaces import open_repo, require_branch, require_clean

    if spec_file is not None:
        if not spec_file.is_file():
            raise UserError(f"--spec-file {spec_file}: no such file")
        spec = spec_file.read_text()
    if not spec or not spec.strip():
        raise UserError("give the spec as an argument or with --spec-file")
    choose_sandbox(sandbox, Path.cwd(), err)
    session = Session(project=Path.cwd(), durable=durable_run or queue, store=store)
    config = race_config(session.settings)
    if not (check or config.check):
        raise UserError("a race needs a check to verify attempts: pass --check 'pytest -q' "
                        "or set check under [race] in flotilla.toml")
    repo = open_repo(Path.cwd())
    require_branch(repo)  # refuse a detached or dirty repository before printing an estimate
    if not allow_dirty:
        require_clean(repo)
    fallback = [f.strip() for f in (fallback_model or "").split(",") if f.strip()]
    plans = build_plans(model, n=n, agent=agent, config=config, default_model=session.settings.model,
                        fallback=fallback)
    agents, broken = ({}, [])
    if any(p.template is None for p in plans):
        from ..agents.loader import load_agents

        agents, broken = load_agents(repo.root)
    choose_strategy(select, judge)  # a --select/--judge mismatch said before any key is looked for
    for warning in preflight(plans, check=check or config.check, agents=agents, settings=session.settings,
                             catalog=session.catalog, parallel=parallel, judge=judge, here=not queue, broken=broken):
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    per, _total = estimate(plans, config=config, catalog=session.catalog, agents=agents)
    err.print(escape(estimate_line(plans, per, budget_usd=budget_usd)), highlight=False)
    started: list[str] = []

    class Started:  # the race's id: said when it starts, and in the one line Ctrl-C prints
        def emit(self, event: Any) -> None:
            if getattr(event, "kind", None) == "race" and not started:
                started.append(event.run_id)
                err.print(f"race {event.run_id}: {len(plans)} attempt{'s' if len(plans) != 1 else ''} from {base}",
                          highlight=False)

    try:
        with LiveView(err, enabled=err.is_terminal and not as_json) as view:
            outcome = session.race_sync(spec, check=check, plans=plans, agent=agent, base=base, parallel=parallel,
                                        judge=judge, select=select, pick=pick, keep=keep, budget_usd=budget_usd,
                                        allow_dirty=allow_dirty, setup=setup, max_turns=max_turns,
                                        attempt_timeout_s=attempt_timeout, queue=queue, remote=remote, approve_asks=yes,
                                        review_with=review_with, sink=FanOut(view, Started()))
    except KeyboardInterrupt:
        if not started:
            raise
        err.print(f"[yellow]interrupted:[/] {escape(stopped_line(session.store.get_run(started[0])))}",
                  highlight=False)
        raise SystemExit(130) from None  # click would swallow a KeyboardInterrupt's message
    result = outcome.to_dict()
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        out.print(outcome_view(session.store.get_run(result["race_id"])["result"]))
    if result["winner"] is None or result.get("merge_error"):
        raise SystemExit(1)  # typer.Exit's code is lost in non-standalone mode


def merge(
    run: str = typer.Argument(..., help="The race's run id (a unique prefix will do)."),
    attempt: Optional[str] = typer.Argument(None, help="The attempt to merge (default: the winner)."),
    squash: bool = typer.Option(False, "--squash", help="One squashed commit instead of a merge commit."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Merge a race's winner (or a named attempt whose check passed), or a fan-out's integration branch."""
    from ..session import Session
    from ..store import open_store, store_location

    if not store_location(store).is_file():  # a store that is not there is not made by looking
        raise UserError(f"no run {run!r}: {store_location(store)} does not exist (nothing has run here yet)")
    session = Session(project=Path.cwd(), durable=False, store=open_store(store))
    head = session.merge(run, attempt, squash=squash)
    record = session.store.get_run(run)
    what = record["result"].get("winner") or record["result"].get("integration_branch")
    out.print(f"merged {what} into {record['meta']['base_branch']} at {head[:10]}",
              highlight=False)


def diff(
    run: str = typer.Argument(..., help="The race's run id."),
    attempt: Optional[str] = typer.Argument(None, help="The attempt (default: the winner)."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Print an attempt's diff against the race's base."""
    from ..patterns.race import attempt_diff

    _store, record, result = _race(store, run)
    chosen = _attempt(result, attempt or result.get("winner") or (result["attempts"] or [{}])[0].get("name"),
                      record["id"])
    text = attempt_diff(record, chosen)
    if not text:
        raise UserError(f"no diff for {chosen['name']}: its branch and commit are gone (removed after the race)")
    sys.stdout.write(text)


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Remove worktrees, branches and locks left by crashed runs (and nothing else)."""
    from ..session import Session

    report = Session(project=Path.cwd(), store=store).gc(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path in report.removed_worktrees:
        out.print(f"{verb} worktree {path}", highlight=False)
    for branch in report.removed_branches:
        out.print(f"{verb} branch {branch}", highlight=False)
    for run_id, state in report.kept.items():
        out.print(f"kept run {run_id}'s leftovers: {state}", style="dim", highlight=False)
    if not report.crashed_runs:
        out.print("nothing to collect: no crashed runs left anything behind")


def demo(what: Optional[str] = typer.Argument(None, help="race (the default), fanout or ledger."),
         keep: bool = typer.Option(False, "--keep", help="Keep the demo repository to look around.")) -> None:
    """Race three scripted attempts on a small library, offline, and merge the winner (`demo fanout`: a fan-out;
    `demo ledger`: a long-horizon build)."""
    from ..demo import run_demo

    if what not in (None, "race", "fanout", "ledger"):
        raise UserError(f"no demo {what!r}: `flotilla demo` (a race), `flotilla demo fanout` or `flotilla demo ledger`")
    if what == "ledger":
        from .ledger_cmd import demo_ledger

        code = demo_ledger(keep)
    elif what == "fanout":
        from .fanout_cmd import demo_fanout

        code = demo_fanout(keep)
    else:
        code = run_demo(out, keep=keep)
    if code:
        raise SystemExit(code)


def _race(store: str | None, run: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from ..patterns.race import finished_race
    from ..store import open_store, store_location

    if not store_location(store).is_file():
        raise UserError(f"no race {run!r}: {store_location(store)} does not exist (nothing has run here yet)")
    run_store = open_store(store)
    record = finished_race(run_store, run)
    return run_store, record, record["result"]


def _attempt(result: dict[str, Any], name: str | None, race_id: str) -> dict[str, Any]:
    attempts = {a["name"]: a for a in result.get("attempts", [])}
    if name is None:
        raise UserError(f"race {race_id} has no winner (no attempt passed its check); nothing to merge")
    if name not in attempts:
        raise UserError(f"race {race_id} has no attempt {name!r}; it has {', '.join(sorted(attempts))}")
    return attempts[name]
