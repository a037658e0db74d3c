"""``flotilla ledger init|work|status|add`` and ``demo ledger``: a thin layer over ``Session.ledger``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ._console import make_console

out = make_console()
ledger_app = typer.Typer(help="The long-horizon ledger: plan features once, build one per fresh session, "
                              "flotilla verifies each.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


def _session(store: str | None, durable: bool = True) -> Any:
    from ..session import Session

    return Session(project=Path.cwd(), durable=durable, store=store)


STORE = typer.Option(None, "--store", help="Run store path.")
DURABLE = typer.Option(True, "--durable/--no-durable", help="Record every step so a crash resumes (`flotilla resume RUN`).")


@ledger_app.command("init")
def init(goal: str = typer.Argument(..., help="What to build, in words."),
         model: Optional[str] = typer.Option(None, "--model", "-m", help="The initializer's model."),
         features: int = typer.Option(20, "--features", min=1, help="Most features the initializer may plan."),
         agent: str = typer.Option("implementer", "--agent", help="The flotilla agent the initializer runs."),
         budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="USD cap for the initializer."),
         as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
         store: Optional[str] = STORE, durable_run: bool = DURABLE) -> None:
    """An initializer session plans GOAL: features.json, PROGRESS.md and a smoke test, committed; nothing built."""
    result = _session(store, durable_run).ledger_sync("init", goal, model=model, max_features=features, agent=agent,
                                                       budget_usd=budget_usd)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    elif result["status"] == "done":
        out.print(f"ledger {result['ledger_id']}: {len(result['features'])} features planned, smoke test "
                  f"`{result['smoke']}` {'green' if result['smoke_passed'] else 'red'}", highlight=False, markup=False)
        for fid in result["flagged"]:
            out.print(f"  flagged: {fid}: its verify passes already, so it proves nothing", highlight=False, markup=False)
    if result["status"] != "done":
        out.print(f"ledger init failed: {result['reason']}", highlight=False, markup=False)
        raise SystemExit(1)


@ledger_app.command("work")
def work(sessions: Optional[int] = typer.Option(None, "--sessions", min=1,
                                                help="Sessions to run (with --until-done: the cap; default [ledger] max_sessions)."),
         model: Optional[str] = typer.Option(None, "--model", "-m", help="The workers' model."),
         until_done: bool = typer.Option(False, "--until-done", help="Go on until every feature passes (or a stop)."),
         budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="USD cap for all these sessions."),
         max_dry: Optional[int] = typer.Option(None, "--max-dry", min=1, help="Stop after N sessions in a row without progress."),
         agent: str = typer.Option("implementer", "--agent", help="The flotilla agent every worker runs."),
         max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help="Most model calls per session."),
         as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
         store: Optional[str] = STORE, durable_run: bool = DURABLE) -> None:
    """Worker sessions, each fresh: smoke test first, the first failing feature; flotilla runs its verify."""
    result = _session(store, durable_run).ledger_sync("work", sessions=sessions, model=model, until_done=until_done,
                                                       budget_usd=budget_usd, max_dry=max_dry, agent=agent,
                                                       max_turns=max_turns, sink=None if as_json else _Live())
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for row in result["sessions"]:
            out.print(session_line(row), highlight=False, markup=False)
        out.print(f"{result['passing']} of {result['features']} features pass; stopped: {result['stop']} "
                  f"(${result['cost_usd']:.4f})", highlight=False, markup=False)
    if result["sessions"] and not any(r["progress"] for r in result["sessions"]):
        raise SystemExit(1)


class _Live:
    """Says each session's end as it happens (a session with a real model can take many minutes)."""

    def emit(self, event: Any) -> None:
        from ..events import AttemptStarted, LedgerSessionEnded

        if isinstance(event, AttemptStarted):
            out.print(f"session {event.attempt[1:]} started ({event.agent}, {event.model})", highlight=False,
                      markup=False)
        elif isinstance(event, LedgerSessionEnded):
            out.print(f"session {event.session} verified by flotilla: {event.feature} "
                      f"{'passes' if event.passed else 'does not pass'}", highlight=False, markup=False)


def session_line(row: dict[str, Any]) -> str:
    said = f"session {row['number']}: {row['feature']} {'passes' if row['passed'] else 'still fails'}"
    if not row["smoke_before"]:
        said += " (the smoke test was red at the start)"
    notes = [f"refused: {d}" for d in row["denials"]] + [f"reverted: {t}" for t in row["reverted_before"] + row["tampered"]]
    notes += [f"regressed: {r}, set back to not passing" for r in row["regressed"]]
    notes += [f"not merged: {row['merge_error']}"] if row["merge_error"] else []
    return "\n".join([said] + [f"  {n}" for n in notes])


@ledger_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the ledger as JSON."),
           store: Optional[str] = STORE) -> None:
    """The features (passes, sessions spent, cost, last failure), sessions so far, cost."""
    from ..errors import UserError
    from ..store import store_location

    if not store_location(store).is_file():  # looking creates nothing
        raise UserError(f"no ledger here: {store_location(store)} does not exist; start one with "
                        "`flotilla ledger init \"GOAL\"`")
    result = _session(store, durable=False).ledger_sync("status")
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=2, default=str))
        return
    done = sum(f["passes"] for f in result["features"])
    out.print(f"ledger {result['ledger_id']}: {result['goal']}\n", highlight=False, markup=False)
    out.print(result["table"], highlight=False, markup=False)
    out.print(f"\n{done} of {len(result['features'])} pass; {result['sessions']} session(s); "
              f"${result['cost_usd']:.4f}", highlight=False, markup=False)


@ledger_app.command("add")
def add(name: str = typer.Argument(..., help="The feature, in one line."),
        verify: str = typer.Option(..., "--verify", help="A shell command that passes only when it works."),
        description: Optional[str] = typer.Option(None, "--description", help="What works when it is done."),
        feature_id: Optional[str] = typer.Option(None, "--id", help="Its id (default: from the name)."),
        store: Optional[str] = STORE) -> None:
    """Add a feature: the one way features grow (a person's act, recorded and committed)."""
    added = _session(store, durable=False).ledger_sync("add", name, verify=verify, description=description,
                                                        feature_id=feature_id)
    out.print(f"added {added['id']}: {added['name']}" + (f" (flagged: {added['note']})" if added["note"] else ""),
              highlight=False, markup=False)


def demo_ledger(keep: bool) -> int:
    from ..demo_ledger import run_ledger_demo

    return run_ledger_demo(out, keep=keep)
