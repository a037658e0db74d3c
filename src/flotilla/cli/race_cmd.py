"""``flotilla race``, ``merge``, ``diff``, ``gc`` and ``demo``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from ..errors import UserError

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("race")(race)
    app.command("merge")(merge)
    app.command("diff")(diff)
    app.command("gc")(gc)
    app.command("demo")(demo)


def race(
    spec: Optional[str] = typer.Argument(None, help="What to do, in words (or --spec-file)."),
    model: list[str] = typer.Option([], "--model", "-m", help="A model to race; repeat for several."),
    n: int = typer.Option(1, "-n", help="Attempts per model."),
    check: Optional[str] = typer.Option(None, "--check", help="The command that verifies an attempt, e.g. 'pytest -q'."),
    agent: str = typer.Option("implementer", "--agent",
                              help="A flotilla agent, or claude-code|codex|gemini|aider|cmd:'TEMPLATE'."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help="Attempts running at once (default: all)."),
    spec_file: Optional[Path] = typer.Option(None, "--spec-file", help="Read the spec from a file."),
    base: str = typer.Option("HEAD", "--base", help="The ref the attempts start from."),
    judge: Optional[str] = typer.Option(None, "--judge", help="A model that scores each passing diff."),
    pick: str = typer.Option("auto", "--pick", help="auto: merge the winner; manual: leave it for `flotilla merge`."),
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
    queue: bool = typer.Option(False, "--queue", help="Enqueue the attempts for `flotilla worker` processes."),
    remote: Optional[str] = typer.Option(None, "--remote",
                                         help="The git remote workers share (default: [worker] remote)."),
) -> None:
    """Race one spec across models in git worktrees; verify, rank, merge the winner."""
    from ..agents.loader import load_agents
    from ..config import load_settings
    from ..models.catalog import Catalog
    from ..patterns._race_report import LiveView, outcome_view
    from ..patterns.race import RaceOptions, build_plans, estimate, race_config, run_race
    from ..store import open_store
    from ..workspaces import open_repo, require_branch, require_clean

    if spec_file is not None:
        if not spec_file.is_file():
            raise UserError(f"--spec-file {spec_file}: no such file")
        spec = spec_file.read_text()
    if not spec or not spec.strip():
        raise UserError("give the spec as an argument or with --spec-file")
    settings = load_settings()
    config = race_config(settings)
    check = check or config.check
    if not check:
        raise UserError("a race needs a check to verify attempts: pass --check 'pytest -q' "
                        "or set check under [race] in flotilla.toml")
    repo = open_repo(Path.cwd())
    require_branch(repo)  # refuse a detached or dirty repository before printing an estimate
    if not allow_dirty:
        require_clean(repo)
    catalog = Catalog.load(settings.data)
    fallback = [f.strip() for f in (fallback_model or "").split(",") if f.strip()]
    plans = build_plans(model, n=n, agent=agent, config=config, default_model=settings.model, fallback=fallback)
    agents: dict[str, Any] = {}
    if any(p.template is None for p in plans):
        agents, _errors = load_agents(repo.root)
        if agent not in agents:
            raise UserError(f"no agent named {agent!r}; flotilla agents: {', '.join(sorted(agents))}; "
                            "external: claude-code, codex, gemini, aider, cmd:'TEMPLATE'")
    per, total = estimate(plans, config=config, catalog=catalog, agents=agents)
    known = [p for p in per if p is not None]
    each = f"~${sum(known) / len(known):.2f}" if known else "?"
    cap = f", capped at ${budget_usd:.2f}" if budget_usd is not None else ""
    unknown = f" (+{len(per) - len(known)} unpriced)" if len(known) < len(per) else ""
    attempts = f"{len(plans)} attempt{'s' if len(plans) != 1 else ''}"
    err.print(f"estimate: {attempts} × {each} = ~${total:.2f}{unknown}{cap}", highlight=False)
    options = RaceOptions(spec=spec, check=check, plans=plans, base=base, parallel=parallel or config.parallel,
                          judge=judge, pick=pick, keep=keep, budget_usd=budget_usd, allow_dirty=allow_dirty,
                          setup=setup or config.setup, worktree_dir=config.worktree_dir,
                          check_timeout=config.check_timeout_s, agent_timeout=config.agent_timeout_s,
                          approve_asks=yes)
    run_store = open_store(store)
    if queue:
        from .durable_cmd import worker_config

        remote = remote or worker_config(settings).remote
    with LiveView(err, enabled=err.is_terminal and not as_json) as view:
        def observe(race_id: str, attempts: list[Any]) -> None:
            err.print(f"race {race_id}: {len(attempts)} attempt{'s' if len(attempts) != 1 else ''} from "
                      f"{options.base}", highlight=False)
            view.observe(race_id, attempts)

        if durable_run or queue:
            result = _durable_race(options, repo.root, run_store, observe, queue=queue, remote=remote)
        else:
            result = asyncio.run(run_race(options, root=repo.root, store=run_store, settings=settings,
                                          agents=agents, catalog=catalog, observe=observe)).to_dict()
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        out.print(outcome_view(run_store.get_run(result["race_id"])["result"]))
    if result["winner"] is None:
        raise SystemExit(1)  # typer.Exit's code is lost in non-standalone mode


def _durable_race(options: Any, root: Path, run_store: Any, observe: Any, *, queue: bool,
                  remote: str | None) -> dict[str, Any]:
    """Runs the race as a durable workflow in this process (its attempts here, or on workers with
    ``queue``); launching also recovers this machine's crashed runs. Ctrl-C cancels it for good."""
    from ..models.budget import Meter
    from ..patterns import durable_race
    from ..patterns.race import _Tracker, begin_race
    from .durable_cmd import durable_url, finish_recovered, launch_recovering, load_workflows

    durable = load_workflows()

    async def go() -> dict[str, Any]:
        recovered = launch_recovering(durable, durable_url(run_store.path))
        try:
            begun = begin_race(options, root=root, store=run_store)
            tracker = _Tracker(begun.attempts, options.budget_usd, lambda: None)
            durable_race.LIVE[begun.race_id] = (tracker, {a.name: a for a in begun.attempts}, Meter())
            observe(begun.race_id, begun.attempts)
            job = durable_race.race_job(options, begun, store=run_store.path, queue=queue, remote=remote)
            handle = await durable_race.start_race(job)
            if queue:
                err.print(f"attempts queued for `flotilla worker` processes (remote: {remote or 'none, one machine'})",
                          highlight=False)
            try:
                result = await handle.result()
            except asyncio.CancelledError:
                await durable.cancel(begun.race_id)
                # the attempts save their work on their branches as they stop (other runs this process
                # recovered in the background are left for the next launch)
                for _ in range(400):
                    if not any(a.status in ("setup", "running", "checking") for a in begun.attempts):
                        break
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(durable_race.record_cancelled, job)
                raise
            await finish_recovered(durable, recovered)
            return result
        finally:
            durable.shutdown()

    return asyncio.run(go())


def merge(
    run: str = typer.Argument(..., help="The race's run id (a unique prefix will do)."),
    attempt: Optional[str] = typer.Argument(None, help="The attempt to merge (default: the winner)."),
    squash: bool = typer.Option(False, "--squash", help="One squashed commit instead of a merge commit."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Merge a race's winner (or a named attempt whose check passed) into the base branch."""
    from ..workspaces import delete_branch, merge_branch, open_repo

    run_store, record, result = _race(store, run)
    chosen = _attempt(result, attempt or result.get("winner"), record["id"])
    if not chosen.get("passed"):
        raise UserError(f"attempt {chosen['name']} of race {record['id']} did not pass its check; "
                        "flotilla only merges attempts that passed")
    if result.get("merged") and chosen["name"] == result.get("winner"):
        raise UserError(f"race {record['id']}'s winner {chosen['name']} is already merged ({result['merged'][:10]})")
    meta = record["meta"]
    repo = open_repo(Path(meta["root"]))
    head = merge_branch(repo, chosen["branch"], base_branch=meta["base_branch"], base_commit=meta["base_commit"],
                        squash=squash, message=f"flotilla race {record['id']}: {chosen['name']} "
                                               f"({chosen['agent']}, {chosen['model'] or 'default'})")
    delete_branch(repo, chosen["branch"])
    result["merged"] = head
    run_store.finish_run(record["id"], record["status"], record["reason"], result=result)
    out.print(f"merged {chosen['name']} into {meta['base_branch']} at {head[:10]}", highlight=False)


def diff(
    run: str = typer.Argument(..., help="The race's run id."),
    attempt: Optional[str] = typer.Argument(None, help="The attempt (default: the winner)."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Print an attempt's diff against the race's base."""
    from ..workspaces import branch_diff, open_repo
    from ..workspaces._git import git

    _store, record, result = _race(store, run)
    chosen = _attempt(result, attempt or result.get("winner") or (result["attempts"] or [{}])[0].get("name"),
                      record["id"])
    text = ""
    repo = open_repo(Path(record["meta"]["root"]))
    for ref in (chosen.get("commit"), chosen.get("branch")):  # the commit outlives the branch until git gc
        if ref and git(repo.root, "cat-file", "-e", f"{ref}^{{commit}}", check=False).returncode == 0:
            text = branch_diff(repo, record["meta"]["base_commit"], ref)
            break
    if not text and chosen["name"] in (result.get("winner"), result["attempts"][0]["name"]):
        text = result.get("winner_diff", "")
    if not text:
        raise UserError(f"no diff for {chosen['name']}: its branch and commit are gone (removed after the race)")
    sys.stdout.write(text)


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path."),
) -> None:
    """Remove worktrees, branches and locks left by crashed runs (and nothing else)."""
    from ..config import load_settings
    from ..patterns.race import race_config
    from ..store import open_store
    from ..workspaces import collect_garbage, open_repo

    from .durable_cmd import give_up

    config = race_config(load_settings())
    run_store = open_store(store)
    report = collect_garbage(open_repo(Path.cwd()), run_store, directory=config.worktree_dir, dry_run=dry_run)
    if not dry_run:  # a crashed durable race whose leftovers are gone must not be resumed later
        give_up(run_store, report.crashed_runs)
    verb = "would remove" if dry_run else "removed"
    for path in report.removed_worktrees:
        out.print(f"{verb} worktree {path}", highlight=False)
    for branch in report.removed_branches:
        out.print(f"{verb} branch {branch}", highlight=False)
    for run_id, state in report.kept.items():
        out.print(f"kept run {run_id}'s leftovers: {state}", style="dim", highlight=False)
    if not report.crashed_runs:
        out.print("nothing to collect: no crashed runs left anything behind")


def demo(keep: bool = typer.Option(False, "--keep", help="Keep the demo repository to look around.")) -> None:
    """Race three scripted attempts on a small library, offline, and merge the winner."""
    from ..demo import run_demo

    code = run_demo(keep=keep)
    if code:
        raise SystemExit(code)


def _race(store: str | None, run: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from ..store import open_store

    run_store = open_store(store)
    record = run_store.get_run(run)
    if record["kind"] != "race":
        raise UserError(f"run {record['id']} is a {record['kind']} run, not a race")
    if record["result"] is None:
        raise UserError(f"race {record['id']} has not finished ({record['status']}); wait for it, or `flotilla gc` "
                        "if its process died")
    return run_store, record, record["result"]


def _attempt(result: dict[str, Any], name: str | None, race_id: str) -> dict[str, Any]:
    attempts = {a["name"]: a for a in result.get("attempts", [])}
    if name is None:
        raise UserError(f"race {race_id} has no winner (no attempt passed its check); nothing to merge")
    if name not in attempts:
        raise UserError(f"race {race_id} has no attempt {name!r}; it has {', '.join(sorted(attempts))}")
    return attempts[name]
