"""What a race looks like in the terminal: the live view, the final table and the winning diff."""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ..models.usage import format_cost

_STATE_STYLE = {"pending": "dim", "setup": "cyan", "running": "yellow", "checking": "blue", "done": "green",
                "failed": "red", "cancelled": "magenta", "budget": "magenta"}
_UNRANKED = {"cancelled": "stopped before it finished; its work is kept on its branch",
             "budget": "stopped when the budget was spent", "done": "finished; the race was stopped before ranking",
             "failed": "failed (below)"}
MAX_DIFF_LINES = 400
DETAIL_LINES = 20
"""Lines of a failed check's output shown under the table (the store keeps its last 1,500 characters)."""


def _get(a: Any, key: str, default: Any = None) -> Any:
    return a.get(key, default) if isinstance(a, dict) else getattr(a, key, default)


def live_table(attempts: list[Any]) -> Table:
    """Per attempt while the race runs: state, turns, tokens, cost, seconds so far."""
    table = Table(title="race", title_justify="left", expand=False)
    for column in ("attempt", "agent", "model", "state", "turns", "tokens", "cost", "time"):
        table.add_column(column, justify="right" if column in ("turns", "tokens", "cost", "time") else "left")
    now = time.time()
    for a in attempts:
        started = _get(a, "started_at") or 0
        seconds = (_get(a, "seconds") or (now - started)) if started else 0.0
        state = _get(a, "status")
        table.add_row(a.name, a.agent, a.model or "—", Text(state, style=_STATE_STYLE.get(state, "")),
                      str(a.turns), f"{a.tokens:,}", format_cost(a.cost_usd, tokens=a.tokens, metered=a.metered),
                      f"{seconds:.1f}s")
    return table


def final_table(attempts: list[Any], winner: str | None) -> Table:
    """The ranked attempts: place, attempt, agent, model, check, judge, lines +/−, tokens, cost, time."""
    table = Table(title="race result", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False, collapse_padding=True)
    for column in ("#", "attempt", "agent", "model", "check", "judge", "+/−", "tokens", "cost", "time"):
        table.add_column(column, justify="right" if column in ("#", "tokens", "cost", "time") else "left",
                         overflow="fold", no_wrap=column not in ("check", "model"))
    for a in attempts:
        check = _get(a, "check")
        if check:
            check_cell = Text(("✓ " if check["passed"] else "✗ ") + check["summary"],
                              style="green" if check["passed"] else "red")
        else:
            check_cell = Text(_get(a, "status"), style=_STATE_STYLE.get(_get(a, "status"), ""))
        score = _get(a, "judge_score")
        name = _get(a, "name")
        tokens = _get(a, "input_tokens", 0) + _get(a, "output_tokens", 0)
        table.add_row(str(_get(a, "place") or "—"), Text(name, style="bold green" if name == winner else ""),
                      _get(a, "agent"), _model_cell(a), check_cell,
                      "—" if score is None else f"{score:g}/10",
                      Text.assemble((f"+{_get(a, 'added')}", "green"), " ", (f"−{_get(a, 'removed')}", "red")),
                      f"{tokens:,}", format_cost(_get(a, "cost_usd"), tokens=tokens, metered=_get(a, "metered", not _get(a, "external"))),
                      f"{_get(a, 'seconds'):.1f}s")
    return table


def _model_cell(a: Any) -> Text:
    cell = Text(_get(a, "model") or "—")
    if _get(a, "fallback_used"):
        cell.append(f"\n→ {_get(a, 'fallback_used')}", style="yellow")
    return cell


def reasons(attempts: list[Any]) -> Text:
    """Why each attempt placed where it did, one line each."""
    text = Text()
    for a in attempts:
        if not _get(a, "place"):  # a race stopped before ranking: no places, only what each was doing
            text.append(f"  {_get(a, 'name')}: ", style="bold")
            text.append(f"{_UNRANKED.get(_get(a, 'status'), _get(a, 'status'))}\n")
            continue
        text.append(f"  {_get(a, 'place')}. {_get(a, 'name')}: ", style="bold")
        text.append(f"{_get(a, 'reason', '')}\n")
        if _get(a, "judge_reasons"):
            text.append(f"     judge: {_get(a, 'judge_reasons')}\n", style="dim")
    return text


def selection_view(selection: dict[str, Any]) -> Text:
    """Which strategy picked the winner, why, what it spent, and its reasoning step by step."""
    spent = f" · {selection['calls']} model call{'s' if selection['calls'] != 1 else ''}, " \
            f"${selection['cost_usd']:.4f}" if selection.get("calls") else " · no model calls"
    text = Text.assemble(("selection ", "bold"), (selection["strategy"], "bold cyan"), spent, "\n")
    text.append(f"  {selection['winner'] or 'no winner'}: {selection['reason']}\n")
    for line in selection.get("log", []):
        text.append(f"    {line}\n", style="dim")
    return text


def failure_details(attempts: list[Any], *, lines: int = DETAIL_LINES) -> Text:
    """Why each attempt that could not win failed, in full: its error, or its check's command and the
    end of its output (``/bin/sh: 1: nosuchcmd: not found``), so nobody has to dig in the store."""
    text = Text()
    for a in attempts:
        error, check = _get(a, "error"), _get(a, "check")
        if _get(a, "eligible") or _get(a, "status") in ("cancelled", "budget"):
            continue
        if error:
            body = error.strip()
        elif check and not check.get("passed"):
            tail = "\n".join(check.get("tail", "").strip().splitlines()[-lines:])
            body = f"$ {check['command']}   (exit {check.get('exit_code')})\n{tail}".rstrip()
        else:
            continue
        if not text:
            text.append("why they failed\n", style="bold")
        text.append(f"  {_get(a, 'name')}: ", style="bold red")
        text.append(body.replace("\n", "\n     ") + "\n")
    return text


def diff_view(diff: str, title: str) -> Panel:
    lines = diff.splitlines()
    shown = "\n".join(lines[:MAX_DIFF_LINES]) + (f"\n… {len(lines) - MAX_DIFF_LINES} more lines"
                                                 if len(lines) > MAX_DIFF_LINES else "")
    return Panel(Syntax(shown or "(empty diff)", "diff", theme="ansi_dark", word_wrap=True), title=title,
                 title_align="left")


def outcome_view(result: dict[str, Any]) -> Group:
    """The final table, the winning (or best) diff and what happened to it, from a race's stored result."""
    attempts = result.get("attempts", [])
    winner = result.get("winner")
    parts: list[Any] = [final_table(attempts, winner), reasons(attempts)]
    details = failure_details(attempts)
    if details:
        parts.append(details)
    if result.get("selection"):
        parts.append(selection_view(result["selection"]))
    best = winner or (attempts[0]["name"] if attempts else None)
    if result.get("winner_diff"):
        label = f"winning diff: {winner}" if winner else f"best diff (not merged): {best}"
        parts.append(diff_view(result["winner_diff"], label))
    if result.get("merged"):
        parts.append(Text(f"merged {winner} into {result['base_branch']} at {result['merged'][:10]}",
                          style="bold green"))
    if result.get("merge_error"):
        parts.append(Text(f"not merged: {result['merge_error']}; {winner} is kept on its branch: "
                          f"`flotilla merge {result['race_id']}` when the repository is ready", style="bold red"))
    for note in result.get("notes", []):
        parts.append(Text(note, style="yellow"))
    return Group(*parts)


def report(store: Any, run_id: str) -> Any:
    """A Rich renderable for a race run in the store (for ``flotilla show``): table and winning diff."""
    run = store.get_run(run_id)
    if run["kind"] != "race":
        return Text(f"run {run['id']} is a {run['kind']} run, not a race")
    head = Text.assemble((f"race {run['id']}", "bold"), f"  {run['status']}", f"  {run['title']}")
    if run["result"] is None:
        attempts = run["meta"].get("attempts", [])
        finished = {e["attempt"]: e for e in store.events(run["id"], "AttemptFinished")}
        table = Table("attempt", "agent", "model", "state")
        for a in attempts:
            table.add_row(a["name"], a["agent"], a["model"] or "—", finished.get(a["name"], {}).get("status", "running"))
        return Group(head, table)
    return Group(head, outcome_view(run["result"]))


def stopped_line(run: dict[str, Any]) -> str:
    """The one line printed when Ctrl-C stops a race: its id, its state, and how to go on or clean up."""
    race_id = run["id"]
    if run["status"] == "running":  # still recording its end (a durable race being cancelled)
        return f"stopped race {race_id}; `flotilla runs` shows its state, `flotilla gc` cleans up if it crashed"
    return (f"stopped race {race_id} ({run['status']}); each attempt's work is kept on its branch "
            f"flotilla/{race_id}/<attempt>: `flotilla diff {race_id} <attempt>` shows it, "
            f"`git branch -D $(git for-each-ref --format='%(refname:short)' refs/heads/flotilla/{race_id}/)` "
            "removes it")


class LiveView:
    """The live table while a race runs, when the console is a terminal; a no-op otherwise.

    It is an event sink (pass it as the race's ``sink``): rows come from ``AttemptStarted``,
    ``UnitState``, ``ModelCalled`` and ``AttemptFinished``, so it shows a durable race as it
    shows one in memory.
    """

    def __init__(self, console: Any, *, enabled: bool = True) -> None:
        self.console, self.enabled = console, enabled
        self.attempts: list[Any] = []
        self._by_run: dict[str, Any] = {}
        self._by_name: dict[str, Any] = {}
        self._live: Any = None

    def emit(self, event: Any) -> None:
        from ..events import AttemptFinished, AttemptStarted, FallbackUsed, ModelCalled, UnitState
        from ..kernel.unit import UnitResult

        if isinstance(event, AttemptStarted):
            row = UnitResult(name=event.attempt, agent=event.agent, model=event.model, run_id=event.worker_run_id,
                             status="setup", started_at=event.at)
            self._by_name[row.name], self._by_run[row.run_id] = row, row
            self.attempts.append(row)
            self._start()
        elif isinstance(event, UnitState) and event.unit in self._by_name:
            self._by_name[event.unit].status = event.state
        elif isinstance(event, ModelCalled) and event.run_id in self._by_run:
            row = self._by_run[event.run_id]
            row.turns += event.role == "executor" and not event.error
            row.input_tokens += event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
            row.output_tokens += event.output_tokens
            row.cost_usd = (row.cost_usd or 0.0) + event.cost_usd
        elif isinstance(event, FallbackUsed) and event.run_id in self._by_run:
            self._by_run[event.run_id].fallback_used = event.to_model
        elif isinstance(event, AttemptFinished) and event.attempt in self._by_name:
            row = self._by_name[event.attempt]
            row.status, row.seconds = event.status, event.at - row.started_at

    def _start(self) -> None:
        if self.enabled and self._live is None:
            from rich.live import Live

            self._live = Live(get_renderable=lambda: live_table(self.attempts), console=self.console,
                              refresh_per_second=8, transient=True)
            self._live.start()

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
