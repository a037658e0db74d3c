"""``flotilla run``, ``agents``, ``runs``, ``show``, ``steer`` and ``stop``: one agent, and the runs in the store."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..agents import AgentResult, Limits, get_agent, load_agents, run_agent
from ..agents.wiring import resolve_model_name, split_names
from ..config import load_settings
from ..errors import FlotillaError, UserError
from ..events import (AdvisorConsulted, Event, McpServerFailed, McpServerStarted, MessageAdded, ModelCalled, RunStarted,
                      SteeringReceived, ToolCalled, ToolDenied)
from ..models.catalog import Catalog
from ..store import SQLiteStore, default_store_path

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("agents")(agents)
    app.command("runs")(runs)
    app.command("show")(show)
    app.command("steer")(steer)
    app.command("stop")(stop)


def _store(cwd: Path | None = None) -> SQLiteStore:
    return SQLiteStore(os.environ.get("FLOTILLA_STORE") or default_store_path((cwd or Path.cwd()).resolve()))


# -- flotilla run ------------------------------------------------------------------


def run(
    agent: str = typer.Argument(..., help="The agent to run (see `flotilla agents`)."),
    task: str = typer.Argument(..., help="What the agent should do."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for the executor (overrides the agent file)."),
    advisor: Optional[str] = typer.Option(None, "--advisor", help="A stronger model the executor consults."),
    fallback_model: Optional[str] = typer.Option(None, "--fallback-model", help="Up to 3 fallback models, comma-separated."),
    cwd: Optional[Path] = typer.Option(None, "--cwd", help="The workspace (default: the current folder)."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help="Most model calls the executor may make."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", min=0, help="Most USD the run may spend."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0, help="Wall-clock seconds the run may take."),
    read_only: bool = typer.Option(False, "--read-only", help="Refuse every tool that changes files."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Approve tool calls that `ask` permission rules hold "
                             "for a person (unattended, they are refused)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON, no live display."),
    durable_run: bool = typer.Option(True, "--durable/--no-durable",
                                     help="Record every step so a crash resumes (`flotilla resume RUN`)."),
) -> None:
    """Run one agent on a task in a workspace, with a live display and a summary."""
    root = (cwd or Path.cwd()).resolve()
    if not root.is_dir():
        raise UserError(f"--cwd {root} is not a folder")
    settings = load_settings(cwd=root)
    spec = get_agent(agent, settings.root)
    store = _store(root)
    limits = Limits(max_turns=max_turns, wall_clock_s=timeout, budget_usd=budget_usd, approve_asks=yes)
    display = None if json_output else _Display(spec.name)
    if durable_run:
        coro = _durable_run(spec.name, task, root, store, display, model=model, advisor=advisor,
                            fallback=split_names(fallback_model), limits=limits, read_only=True if read_only else None)
    else:
        coro = run_agent(spec, task, root, model=model, advisor=advisor, fallback=split_names(fallback_model),
                         limits=limits, store=store, sink=display, settings=settings,
                         read_only=True if read_only else None)
    if display is None:
        result = asyncio.run(coro)
        out.print_json(json.dumps(_result_json(result)))
    else:
        with Live(display.render(), console=err, refresh_per_second=8, transient=True) as live:
            display.live = live
            result = asyncio.run(coro)
        _summary(result, display)
    raise typer.Exit(0 if result.stop_reason == "end_turn" else 1)


async def _durable_run(agent: str, task: str, root: Path, store: SQLiteStore, display: Any, **options: Any) -> AgentResult:
    """The run as a durable workflow in this process; launching also recovers this machine's crashed runs.
    Ctrl-C cancels it for good (it is recorded as cancelled, not left to resume)."""
    from ..agents import durable_run
    from ..store import new_id
    from .durable_cmd import durable_url, finish_recovered, launch_recovering, load_workflows

    durable = load_workflows()
    recovered = launch_recovering(durable, durable_url(store.path))
    try:
        run_id = new_id()
        durable_run.LIVE[run_id] = display
        job = durable_run.agent_job(agent, task, root, run_id=run_id, store=store.path, **options)
        handle = await durable.start(durable_run.agent_workflow, job, workflow_id=run_id)
        try:
            result = durable_run.result_from_json(await handle.result())
        except asyncio.CancelledError:
            await durable.cancel(run_id)
            for _ in range(200):  # the run records itself as cancelled as its step stops
                if _status(store, run_id) != "running":
                    break
                await asyncio.sleep(0.05)
            raise
        await finish_recovered(durable, recovered)
        return result
    finally:
        durable.shutdown()


def _status(store: SQLiteStore, run_id: str) -> str:
    rows = store.execute("SELECT status FROM runs WHERE id = ?", (run_id,))
    return rows[0]["status"] if rows else "running"


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
        elif isinstance(event, ToolDenied):
            self.denied += 1
            self._note(f"[red]denied[/] {event.tool}: {event.reason[:100]}")
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
                       f"tokens {self.input_tokens:,} in / {self.output_tokens:,} out · ${self.cost:.4f} · "
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
              f" · ${result.cost_usd:.4f}", highlight=False)
    if result.files_changed:
        err.print(f"files changed: {', '.join(result.files_changed)}", highlight=False)
    if result.error:
        err.print(f"[red]{result.error}[/]", highlight=False)


# -- flotilla agents ----------------------------------------------------------------


def agents(cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project (default: the current folder).")) -> None:
    """List the agents: name, where each came from, its model as resolved, its tools."""
    root = (cwd or Path.cwd()).resolve()
    settings = load_settings(cwd=root)
    catalog = Catalog.load(settings.data)
    found, errors = load_agents(settings.root)
    table = Table("agent", "from", "model", "tools", box=None, pad_edge=False)
    table.columns[2].no_wrap = True
    for spec in sorted(found.values(), key=lambda s: s.name):
        try:
            model = resolve_model_name(spec, settings, catalog)
            if spec.model in ("", "inherit"):
                model = f"inherit → {model}"
        except FlotillaError as exc:
            model = f"[red]{spec.model} ({exc})[/]"
        source = "built-in" if spec.source == "built-in" else _short_path(spec.source, settings.root)
        tools = ", ".join(spec.allowed_tools()) + (" [dim](read-only)[/]" if spec.read_only else "")
        table.add_row(spec.name, source, model, tools)
    out.print(table)
    for spec in found.values():
        for warning in spec.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for error in errors:
        err.print(f"[red]broken agent file:[/] {error}", highlight=False)


def _short_path(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path.replace(str(Path.home()), "~")


# -- flotilla runs / show -------------------------------------------------------------


def runs(limit: int = typer.Option(20, "--limit", "-n", help="How many runs to list."),
         kind: Optional[str] = typer.Option(None, "--kind", help="Only runs of this kind (agent, race, …)."),
         cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to read.")) -> None:
    """List recent runs, newest first."""
    store = _store(cwd)
    rows = store.list_runs(kind=kind, limit=limit)
    cost: dict[str, float] = {}
    for row in store.usage([r["id"] for r in rows]):
        cost[row["run_id"]] = cost.get(row["run_id"], 0.0) + (row["cost_usd"] or 0.0)
    from .durable_cmd import durable_states

    # A durable run's state tells a live run from a crashed one that `flotilla resume` continues.
    states = durable_states(store.path, [r["id"] for r in rows if r["status"] in ("running", "crashed")])
    table = Table("run", "kind", "status", "reason", "cost", "age", "title", box=None, pad_edge=False)
    for r in rows:
        status = r["status"]
        if r["id"] in states:  # a resumed run's row still names the dead process
            status = {"resumable": "crashed (resumable)"}.get(states[r["id"]], states[r["id"]])
        table.add_row(r["id"], r["kind"], status, (r["reason"] or "")[:40], f"${cost.get(r['id'], 0.0):.4f}",
                      _age(r["created_at"]), r["title"][:70])
    out.print(table)


def show(run_id: str = typer.Argument(..., help="A run id (a unique prefix will do)."),
         cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to read."),
         json_output: bool = typer.Option(False, "--json", help="Print the run, transcript and usage as JSON.")) -> None:
    """Show one run: its transcript, and usage and cost by model (subagents included)."""
    store = _store(cwd)
    run = store.get_run(run_id)
    family = _family(store, run["id"])
    messages = [e["message"] for e in store.events(run["id"], "MessageAdded")]
    usage = store.usage(family)
    if json_output:
        out.print_json(json.dumps({"run": run, "transcript": messages, "usage": usage}, default=str))
        return
    out.print(f"[bold]{run['title']}[/]  run {run['id']} · {run['kind']} · {run['status']} ({run['reason']})",
              highlight=False)
    if run["kind"] == "race":
        from ..patterns.race import report

        out.print(report(store, run["id"]))
    for message in messages:
        _print_message(message)
    table = Table("run", "role", "model", "calls", "input", "output", "cache read", "cache write", "cost",
                  title="usage by model", box=None, pad_edge=False)
    total = 0.0
    for u in usage:
        total += u["cost_usd"] or 0.0
        table.add_row(u["run_id"], u["role"], f"{u['provider']}:{u['model']}", str(u["calls"]),
                      f"{u['input_tokens']:,}", f"{u['output_tokens']:,}", f"{u['cache_read_tokens']:,}",
                      f"{u['cache_write_tokens']:,}", f"${u['cost_usd'] or 0:.4f}")
    out.print(table)
    out.print(f"total ${total:.4f} across {len(family)} run(s)", highlight=False)


def _family(store: SQLiteStore, run_id: str) -> list[str]:
    """The run and all its descendants (subagents, attempts)."""
    ids, frontier = [run_id], [run_id]
    while frontier:
        children = [r["id"] for p in frontier for r in store.list_runs(parent_id=p, limit=10_000)]
        ids += children
        frontier = children
    return ids


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
    if not message and not read_only:
        raise UserError("give a message, --read-only, or both")
    store = _store(cwd)
    run = _running(store, run_id)
    store.send_steering(run["id"], message, read_only=read_only)
    if read_only:  # its running subagents too: read-only must not leak out through a child
        for child in _family(store, run["id"])[1:]:
            if store.get_run(child)["status"] == "running":
                store.send_steering(child, read_only=True)
    err.print(f"sent to run {run['id']}; it takes it before its next model call", highlight=False)


def stop(run_id: str = typer.Argument(..., help="The running run to stop."),
         cwd: Optional[Path] = typer.Option(None, "--cwd", help="The project whose store to use.")) -> None:
    """Ask a running run (and its running subagents) to end cleanly before their next model call."""
    store = _store(cwd)
    run = _running(store, run_id)
    # A parent takes its inbox only between its own model calls; its subagents are asked directly.
    targets = [i for i in _family(store, run["id"]) if store.get_run(i)["status"] == "running"]
    for target in targets:
        store.send_steering(target, stop=True)
    more = f" and {len(targets) - 1} running subagent(s)" if len(targets) > 1 else ""
    err.print(f"asked run {run['id']}{more} to stop", highlight=False)


def _running(store: SQLiteStore, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run["status"] != "running":
        raise UserError(f"run {run['id']} is not running (it is {run['status']}: {run['reason']})")
    return run
