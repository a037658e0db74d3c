"""``flotilla run``, ``agents``, ``runs``, ``show``, ``steer`` and ``stop``: one agent, and the runs in the store."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..agents import AgentResult, get_agent
from ..agents.limits import LimitsConfig
from ..agents.wiring import resolve_model_name, split_names
from ..config import load_settings
from ..errors import FlotillaError, UserError
from ..events import (AdvisorConsulted, Event, McpServerFailed, McpServerStarted, MessageAdded, ModelCalled, RunStarted,
                      SandboxDenied, SteeringReceived, ToolCalled, ToolDenied)
from ..models.catalog import Catalog
from ..models.usage import format_cost, rows_cost
from ..store import SQLiteStore, new_id, store_location
from ._console import make_console
from ._sandbox_flag import choose_sandbox, sandbox_option

out = make_console()
err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("agents")(agents)
    app.command("runs")(runs)
    app.command("show")(show)
    app.command("steer")(steer)
    app.command("stop")(stop)


def _store(cwd: Path | None = None) -> SQLiteStore:
    return SQLiteStore(store_location(root=(cwd or Path.cwd()).resolve()))


def _existing_store(cwd: Path | None = None) -> SQLiteStore | None:
    """The store to read, or None when there is none yet (reading must not create one)."""
    path = store_location(root=(cwd or Path.cwd()).resolve())
    return SQLiteStore(path) if path.is_file() else None


def _reading(cwd: Path | None = None) -> SQLiteStore:
    store = _existing_store(cwd)
    if store is None:
        path = store_location(root=(cwd or Path.cwd()).resolve())
        raise UserError(f"no runs here: {path} does not exist (nothing has run in this project yet; "
                        "--cwd or FLOTILLA_STORE point at another project's store)")
    return store


# -- flotilla run ------------------------------------------------------------------


def run(
    agent: str = typer.Argument(..., help="The agent to run (see `flotilla agents`)."),
    task: str = typer.Argument(..., help="What the agent should do."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for the executor (overrides the agent file)."),
    advisor: Optional[str] = typer.Option(None, "--advisor", help="A stronger model the executor consults."),
    fallback_model: Optional[str] = typer.Option(None, "--fallback-model", help="Up to 3 fallback models, comma-separated."),
    cwd: Optional[Path] = typer.Option(None, "--cwd", help="The workspace (default: the current folder)."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help=(
        f"Most model calls the executor may make (default {LimitsConfig().max_turns}; [limits] max_turns).")),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", min=0, help="Most USD the run may spend."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0, help=(
        f"Wall-clock seconds the run may take (default {LimitsConfig().wall_clock_s:g}; [limits] wall_clock_s; "
        "0 for no bound).")),
    read_only: bool = typer.Option(False, "--read-only", help="Refuse every tool that changes files."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Approve tool calls that `ask` permission rules hold "
                             "for a person (unattended, they are refused)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON, no live display."),
    durable_run: bool = typer.Option(True, "--durable/--no-durable",
                                     help="Record every step so a crash resumes (`flotilla resume RUN`)."),
    sandbox: Optional[str] = sandbox_option(),
) -> None:
    """Run one agent on a task in a workspace, with a live display and a summary."""
    from ..session import Session

    root = (cwd or Path.cwd()).resolve()
    if not root.is_dir():
        raise UserError(f"--cwd {root} is not a folder")
    choose_sandbox(sandbox, root, err)
    session = Session(project=root, durable=durable_run, store=_store(root))
    spec = get_agent(agent, session.settings.root, agents=session.agents_for(session.settings.root))
    for warning in spec.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    display = None if json_output else _Display(spec.name)
    run_id = new_id()
    options = dict(model=model, advisor=advisor, fallback=split_names(fallback_model), max_turns=max_turns,
                   budget_usd=budget_usd, timeout_s=timeout, read_only=True if read_only else None, sink=display,
                   run_id=run_id, approve_asks=yes)
    try:
        if display is None:
            result = session.run_sync(agent, task, **options)
            out.print_json(json.dumps(_result_json(result)))
        else:
            with Live(display.render(), console=err, refresh_per_second=8, transient=True) as live:
                display.live = live
                result = session.run_sync(agent, task, **options)
            _summary(result, display)
    except KeyboardInterrupt:
        recorded = session.store.execute("SELECT status FROM runs WHERE id = ?", (run_id,))
        if not recorded:  # stopped before the run began
            raise
        err.print(f"[yellow]interrupted:[/] stopped run {run_id} ({recorded[0]['status']}); the files it changed "
                  f"stay in {escape(str(root))}; `flotilla show {run_id}` shows its transcript", highlight=False)
        raise SystemExit(130) from None  # click would swallow a KeyboardInterrupt's message
    raise typer.Exit(0 if result.stop_reason == "end_turn" else 1)


def _result_json(result: AgentResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["usage"] = result.usage.wire()
    return data


class _Display:
    """An event sink that keeps the live panel's figures (subagents' included)."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.live: Live | None = None
        self.run_id = ""
        self.model = ""
        self.turns = self.tool_calls = self.denied = self.input_tokens = self.output_tokens = 0
        self.cost = 0.0
        self.last = ""
        self.started = time.monotonic()

    def emit(self, event: Event) -> None:
        if isinstance(event, RunStarted) and not self.run_id:
            self.run_id = event.run_id or ""
        elif isinstance(event, ModelCalled):
            self.model = self.model or f"{event.provider}:{event.model}"
            self.input_tokens += event.input_tokens + event.cache_read_tokens + event.cache_write_tokens
            self.output_tokens += event.output_tokens
            self.cost += event.cost_usd
        elif isinstance(event, MessageAdded) and event.message.get("role") == "assistant":
            self.turns += 1
        elif isinstance(event, ToolCalled):
            self.tool_calls += 1
            self._note(f"{'✗' if event.is_error else '·'} {event.tool} {_brief(event.input)}")
        elif isinstance(event, (ToolDenied, SandboxDenied)):
            self.denied += 1
            self._note(f"[red]denied[/] {event.tool}: {escape(event.reason[:160])}")
        elif isinstance(event, AdvisorConsulted):
            self._note(f"[magenta]advisor[/] ({event.trigger}) {event.advice[:100]}")
        elif isinstance(event, McpServerFailed):
            self._note(f"[red]MCP server {escape(event.server)} did not start[/] (the run goes on without it): "
                       f"{escape(event.error)}" + (f"\n{escape(event.stderr[-600:])}" if event.stderr else ""))
        elif isinstance(event, McpServerStarted):
            self._note(f"MCP server {escape(event.server)}: {len(event.tools)} tools ({event.duration_ms:.0f} ms)")
        elif isinstance(event, SteeringReceived):
            self._note(f"[yellow]steered[/] {event.message[:100]}{' (read-only)' if event.read_only else ''}")
        if self.live is not None:
            self.live.update(self.render())

    def _note(self, line: str) -> None:
        self.last = line
        if self.live is not None:
            self.live.console.print(Text.from_markup(line) if "[" in line and "]" in line else line,
                                    highlight=False)

    def render(self) -> Any:
        elapsed = time.monotonic() - self.started
        head = Text.assemble((f"{self.agent} ", "bold"), (f"run {self.run_id} ", "dim"), (self.model, "cyan"))
        figures = Text(f"turns {self.turns} · tool calls {self.tool_calls} · denied {self.denied} · "
                       f"tokens {self.input_tokens:,} in / {self.output_tokens:,} out · "
                       f"{format_cost(self.cost, tokens=self.input_tokens + self.output_tokens)} · "
                       f"{elapsed:.0f}s")
        return Group(head, figures)


def _brief(input: dict[str, Any]) -> str:
    for key in ("command", "file_path", "pattern", "path", "subagent_type", "question"):
        if key in input:
            return str(input[key])[:80]
    return json.dumps(input)[:80]


def _summary(result: AgentResult, display: _Display) -> None:
    if result.text:
        out.print(result.text, highlight=False, markup=False)
    style = "green" if result.stop_reason == "end_turn" else "red" if result.stop_reason == "error" else "yellow"
    err.print(f"[{style}]■ {result.stop_reason}[/] run {result.run_id} · {result.turns} turns · "
              f"{result.tool_calls} tool calls · tokens {display.input_tokens:,} in / {display.output_tokens:,} out"
              f" · {format_cost(result.cost_usd, tokens=display.input_tokens + display.output_tokens)}",
              highlight=False)
    if result.files_changed:
        err.print(f"files changed: {', '.join(result.files_changed)}", highlight=False)
    if result.error:
        err.print(f"[red]{result.error}[/]", highlight=False)


# -- flotilla agents ----------------------------------------------------------------


def agents(cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project (default: the current folder).")) -> None:
    """List every agent file found: which one won each name, its model and tools, what is broken.

    A file shadowed by one of higher precedence is listed with the file that won; a broken file
    (a bad field, a model that does not resolve) with the field at fault."""
    from ..agents.loader import check_agent, scan_agents

    root = (cwd or Path.cwd()).resolve()
    settings = load_settings(cwd=root)
    catalog = Catalog.load(settings.data)
    entries = scan_agents(settings.root)
    order = {id(e): i for i, e in enumerate(entries)}  # precedence order within one name
    table = Table("agent", "from", "model", "tools", "note", box=None, pad_edge=False)
    broken: list[Any] = []
    for entry in sorted(entries, key=lambda e: (e.name, order[id(e)])):
        spec, source = entry.spec, _short_path(entry.source, settings.root)
        problem = entry.error or (check_agent(spec, settings=settings, catalog=catalog) if spec else None)
        if problem is not None:
            broken.append(problem)
        if spec is None:
            table.add_row(entry.name, source, "—", "—", _broken(problem))
            continue
        try:
            model = resolve_model_name(spec, settings, catalog)
            model = f"inherit → {model}" if spec.model in ("", "inherit") else model
        except FlotillaError:
            model = spec.model
        tools = ", ".join(spec.allowed_tools()) + (" (read-only)" if spec.read_only else "")
        if entry.shadowed_by:
            note = Text(f"shadowed by {_short_path(entry.shadowed_by, settings.root)}", style="dim")
        elif problem is not None:
            note = _broken(problem)
        else:  # an unknown tool or field: the file works, without it
            note = Text("; ".join(w.split(": ", 1)[-1].split(" (")[0] for w in spec.warnings), style="yellow")
        table.add_row(entry.name, source, model, tools, note)
    out.print(table)
    for entry in entries:
        for warning in entry.spec.warnings if entry.spec else []:
            err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for error in broken:
        err.print(f"[red]broken agent file:[/] {escape(str(error))}", highlight=False)


def _broken(problem: Any) -> Text:
    """The table's short form (the full error is printed under the table)."""
    return Text(f"broken: field {problem.field!r}: {problem.problem.split('; ')[0]}", style="red")


def _short_path(path: str, root: Path) -> str:
    if path == "built-in":
        return path
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path.replace(str(Path.home()), "~")


# -- flotilla runs / show -------------------------------------------------------------


def runs(limit: int = typer.Option(20, "--limit", "-n", help="How many runs to list."),
         kind: Optional[str] = typer.Option(None, "--kind", help="Only runs of this kind (agent, race, …)."),
         cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to read.")) -> None:
    """List recent runs, newest first."""
    store = _existing_store(cwd)
    if store is None:
        err.print(f"no runs yet: {store_location(root=(cwd or Path.cwd()).resolve())} does not exist", highlight=False)
        return
    rows = store.list_runs(kind=kind, limit=limit)
    catalog = Catalog.load(load_settings(cwd=(cwd or Path.cwd()).resolve()).data)
    from .durable_cmd import durable_states

    # A durable run's state tells a live run from a crashed one that `flotilla resume` continues.
    states = durable_states(store.path, [r["id"] for r in rows if r["status"] in ("running", "crashed")])
    table = Table("run", "kind", "status", "reason", "cost", "age", "title", box=None, pad_edge=False)
    for r in rows:
        status = r["status"]
        if r["id"] in states:  # a resumed run's row still names the dead process
            status = {"resumable": "crashed (resumable)"}.get(states[r["id"]], states[r["id"]])
        if r["status"] == "running" and (r["meta"] or {}).get("state") == "awaiting approval":
            status = "waiting: approve or reject"  # a person is needed, whether its process still runs or not
        table.add_row(r["id"], r["kind"], status, (r["reason"] or "")[:40],
                      format_cost(_family_cost(store, r, catalog)), _age(r["created_at"]), r["title"][:70])
    out.print(table)


def show(run_id: str = typer.Argument(..., help="A run id (a unique prefix will do)."),
         attempt: Optional[str] = typer.Argument(None, help="One attempt of a race or unit of a run (a1 …)."),
         cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to read."),
         json_output: bool = typer.Option(False, "--json", help="Print the run, transcript and usage as JSON.")) -> None:
    """Show one run (or one attempt of a race): its transcript, an external CLI's command and output,
    and usage and cost by model (subagents included)."""
    store = _reading(cwd)
    run = store.get_run(run_id)
    if attempt is not None:
        run = store.get_run(_attempt_run(store, run, attempt))
    family = store.family(run["id"])
    messages = [e["message"] for e in store.events(run["id"], "MessageAdded")]
    external = store.events(run["id"], "ExternalRan")
    usage = store.usage(family)
    if json_output:
        out.print_json(json.dumps({"run": run, "transcript": messages, "usage": usage, "external": external},
                                  default=str))
        return
    out.print(f"[bold]{run['title']}[/]  run {run['id']} · {run['kind']} · {run['status']} ({run['reason']})",
              highlight=False)
    for ran in external:
        out.print(f"[bold]$[/] {escape(ran['command'])}", highlight=False)
        metered = "metered through flotilla's gateway" if ran.get("metered") else "run direct: cost unknown"
        out.print(f"exit code {ran['exit_code']} · {ran['duration_ms'] / 1000:.1f}s · {metered}", highlight=False)
        out.print(ran["output"], highlight=False, markup=False)
    if run["kind"] == "race":
        from ..patterns.race import report

        out.print(report(store, run["id"]))
    elif run["kind"] == "ask" and (run["result"] or {}).get("samples"):
        from ._sampled import sampled_report

        out.print(sampled_report(run["result"]))
    if run["kind"] == "pipeline" and run["result"]:
        from ..patterns._pipeline_report import render as render_pipeline

        out.print(render_pipeline(run["result"]), highlight=False, markup=False)
    if run["kind"] == "review" and run["result"]:
        from ..patterns._review_report import render as render_review

        out.print(render_review(run["result"]), highlight=False, markup=False)
    if run["kind"] == "fanout" and run["result"]:
        from ..patterns._fanout_report import render

        out.print(render(run["result"]), highlight=False, markup=False)
    for message in messages:
        _print_message(message)
    table = Table("run", "role", "model", "calls", "input", "output", "cache read", "cache write", "cost",
                  title="usage by model", box=None, pad_edge=False)
    catalog = Catalog.load(load_settings(cwd=(cwd or Path.cwd()).resolve()).data)
    for u in usage:
        table.add_row(u["run_id"], u["role"], f"{u['provider']}:{u['model']}", str(u["calls"]),
                      f"{u['input_tokens']:,}", f"{u['output_tokens']:,}", f"{u['cache_read_tokens']:,}",
                      f"{u['cache_write_tokens']:,}", format_cost(rows_cost([u], catalog)))
    out.print(table)
    out.print(f"total {format_cost(_family_cost(store, run, catalog))} across {len(family)} run(s)", highlight=False)


def _attempt_run(store: SQLiteStore, run: dict[str, Any], attempt: str) -> str:
    """The run id of attempt ``attempt`` (its name, like ``a1``) of ``run``."""
    children = {c["title"].split(":", 1)[0]: c["id"] for c in store.list_runs(parent_id=run["id"])}
    for a in (run.get("meta") or {}).get("attempts", []):
        children.setdefault(a["name"], a["run_id"])
    if attempt not in children:
        raise UserError(f"run {run['id']} has no attempt {attempt!r}; it has {', '.join(sorted(children)) or 'none'}")
    return children[attempt]


def _family_cost(store: SQLiteStore, run: dict[str, Any], catalog: Catalog) -> float | None:
    """A run's cost with its subagents' and attempts'; None (unknown) when part of it was spent by an
    external agent CLI run direct (an ``attempt`` run with no usage rows) or on a model with no price."""
    family = store.family(run["id"])
    if any(store.get_run(i)["kind"] == "attempt" and not store.usage([i]) for i in family):
        return None  # an external CLI run direct: nothing metered it
    return rows_cost(store.usage(family), catalog)


def _print_message(message: dict[str, Any]) -> None:
    role = message.get("role", "?")
    colour = {"user": "green", "assistant": "cyan", "system": "yellow"}.get(role, "white")
    out.print(f"[bold {colour}]── {role}[/]")
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            out.print(block["text"], highlight=False, markup=False)
        elif kind == "tool_use":
            out.print(f"→ {block['name']} {json.dumps(block.get('input', {}))[:300]}", highlight=False, markup=False)
        elif kind == "tool_result":
            body = block.get("content")
            text = body if isinstance(body, str) else "".join(b.get("text", "") for b in body or [])
            mark = "✗" if block.get("is_error") else "←"
            out.print(f"{mark} {text[:500]}", highlight=False, markup=False)
        elif kind == "thinking":
            out.print(f"[dim](thinking) {block.get('thinking', '')[:300]}[/]", highlight=False)


def _age(created: float) -> str:
    seconds = max(0, time.time() - created)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


# -- flotilla steer / stop ----------------------------------------------------------------


def steer(run_id: str = typer.Argument(..., help="The running run to steer."),
          message: str = typer.Argument("", help="The message to add to its conversation."),
          read_only: bool = typer.Option(False, "--read-only", help="Switch the run to read-only tools."),
          cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to use.")) -> None:
    """Put a message (and/or a switch to read-only) in a running run's inbox; it arrives before its next model call."""
    from ..session import Session

    target = Session(project=cwd or Path.cwd(), durable=False, store=_reading(cwd)).steer(run_id, message,
                                                                                         read_only=read_only)
    err.print(f"sent to run {target}; it takes it before its next model call", highlight=False)


def stop(run_id: str = typer.Argument(..., help="The running run to stop."),
         cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to use.")) -> None:
    """Ask a running run (and its running subagents) to end cleanly before their next model call."""
    from ..session import Session

    targets = Session(project=cwd or Path.cwd(), durable=False, store=_reading(cwd)).stop(run_id)
    more = f" and {len(targets) - 1} running subagent(s)" if len(targets) > 1 else ""
    err.print(f"asked run {targets[0]}{more} to stop", highlight=False)
