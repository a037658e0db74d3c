"""Eval: a task set with hidden checks through one or more race configurations, and what each one buys.

Each (configuration, task) pair is one race in a fresh repository made from the task (``_eval_tasks``),
picked with ``pick="manual"`` so nothing is merged. After the race has selected, every attempt whose
visible check passed gets the hidden check in a clean checkout of its commit, with the hidden files
written in: the attempts never see them. An attempt **solves** a task when its visible check passed
and the hidden check passes on its commit. Per configuration:

- pass@1: the first attempt (``a1``) alone solves it;
- any@N: some attempt solves it (coverage);
- selected@N: the attempt the race picked solves it;
- selector loss: any@N − selected@N, what the selector threw away;
- cost and time per task, and the cost per extra task solved relative to the first configuration.

Each pair's result is a child run (``eval-task``) of the ``eval`` run in the store as soon as it is
known, so an eval stopped any way (``kill -9`` included) goes on with ``resume=EVAL_ID``: finished pairs
are read back, not run again. ``budget_usd`` caps the whole eval: each race gets what is left, the
race's own budget enforcement stops it there, and pairs not started for want of budget say so.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..workspaces import run_check
from ..workspaces._git import git
from ._eval_tasks import EvalConfig, EvalTask, hidden_check_dir, load_config, load_tasks, prepare_repo

__all__ = ["EvalConfig", "EvalReport", "EvalTask", "load_config", "load_tasks", "run_eval", "summarise"]


@dataclass
class EvalReport:
    eval_id: str
    configs: list[str]
    tasks: list[str]
    results: list[dict[str, Any]]
    """One per (configuration, task): attempts with their visible and hidden outcomes, the pick, cost, time."""
    summary: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"eval_id": self.eval_id, "configs": self.configs, "tasks": self.tasks, "summary": self.summary,
                "results": self.results}


async def run_eval(session: Any, tasks_path: Path, config_paths: list[Path], *, n: int | None = None,
                   budget_usd: float | None = None, resume: str | None = None, sink: Any = None) -> EvalReport:
    """Runs every task with every configuration (see the module docstring) and returns the report."""
    if not config_paths:
        raise UserError("give at least one race configuration: --config a.toml")
    if n is not None and n < 1:
        raise UserError(f"-n must be at least 1 (got {n})")
    tasks = load_tasks(Path(tasks_path))
    configs = [load_config(Path(p)) for p in config_paths]
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise UserError(f"two configurations are named alike ({', '.join(names)}): set name = … in each file")
    meta = {"tasks": str(Path(tasks_path).resolve()), "configs": names, "n": n, "budget_usd": budget_usd}
    store = session.store
    if resume:
        record = store.get_run(resume)
        if record["kind"] != "eval":
            raise UserError(f"run {record['id']} is a {record['kind']} run, not an eval")
        if record["meta"].get("configs") != names or record["meta"].get("tasks") != meta["tasks"]:
            raise UserError(f"eval {record['id']} ran {record['meta'].get('tasks')} with "
                            f"{', '.join(record['meta'].get('configs', []))}: resume it with the same task set "
                            "and --config files")
        eval_id = record["id"]
        done = {store.get_run(i)["title"]: store.get_run(i) for i in store.family(eval_id)[1:]}
        finished = {t: r["result"] for t, r in done.items() if r["status"] == "done" and r["result"]}
    else:
        eval_id = store.create_run("eval", f"eval {Path(tasks_path).name}: {' vs '.join(names)}", meta=meta)
        finished = {}
    work = session.project / ".flotilla" / "eval" / eval_id
    results = []
    for config in configs:
        for task in tasks:
            title = f"{config.name}/{task.id}"
            if title in finished:
                results.append(finished[title])
                continue
            spent = sum(r["cost_usd"] or 0.0 for r in results)
            left = None if budget_usd is None else budget_usd - spent
            if left is not None and left <= 0:
                result = _skipped(config, task, f"not started: the eval's budget of ${budget_usd:.2f} was spent")
            else:
                result = await _one(session, config, task, work / config.name / task.id, n=n, budget_usd=left)
            child = store.create_run("eval-task", title, parent_id=eval_id, meta={"config": config.name,
                                                                                  "task": task.id})
            store.finish_run(child, "done", result["status"], result=result)
            if sink is not None:
                sink(result)
            results.append(result)
    report = EvalReport(eval_id, names, [t.id for t in tasks], results)
    report.summary = summarise(report)
    store.finish_run(eval_id, "done", "", result=report.to_dict())
    return report


def _skipped(config: EvalConfig, task: EvalTask, why: str) -> dict[str, Any]:
    return {"config": config.name, "task": task.id, "status": "skipped", "reason": why, "race_id": None,
            "winner": None, "selection": None, "attempts": [], "first_solved": False, "any_solved": False,
            "selected_solved": False, "cost_usd": 0.0, "seconds": 0.0}


async def _one(session: Any, config: EvalConfig, task: EvalTask, folder: Path, *, n: int | None,
               budget_usd: float | None) -> dict[str, Any]:
    """One race of ``task`` with ``config`` in a fresh repository, then the hidden check on each passing attempt."""
    repo = await asyncio.to_thread(prepare_repo, task, folder / "repo")
    race_session = session.sibling(repo)
    started = time.time()
    async with race_session:
        outcome = await race_session.race(task.spec, models=list(config.models), check=task.check,
                                          n=config.samples or n or 1, agent=config.agent, select=config.select,
                                          judge=config.judge, parallel=config.parallel, pick="manual",
                                          budget_usd=budget_usd, max_turns=config.max_turns,
                                          attempt_timeout_s=config.attempt_timeout_s)
    seconds = time.time() - started
    attempts = []
    for a in sorted(outcome.attempts, key=lambda a: _order(a.name)):
        hidden = None
        if a.eligible and a.commit:
            hidden = await _hidden(repo, a.commit, folder / f"hidden-{a.name}", task)
        attempts.append({"name": a.name, "model": a.model, "status": a.status, "visible": a.passed,
                         "hidden": hidden, "solved": bool(hidden), "cost_usd": a.cost_usd})
    solved = {a["name"]: a["solved"] for a in attempts}
    costs = [a["cost_usd"] for a in attempts]
    cost = None if any(c is None for c in costs) else sum(costs) + outcome.judge_cost_usd
    winner = outcome.winner.name if outcome.winner else None
    return {"config": config.name, "task": task.id, "status": outcome.status, "reason": "", "race_id": outcome.race_id,
            "winner": winner, "selection": outcome.selection, "attempts": attempts,
            "first_solved": solved.get("a1", False), "any_solved": any(solved.values()),
            "selected_solved": bool(winner and solved.get(winner)), "cost_usd": cost, "seconds": seconds}


def _order(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


async def _hidden(repo: Path, commit: str, dest: Path, task: EvalTask) -> bool:
    checkout = await asyncio.to_thread(hidden_check_dir, repo, commit, dest, task)
    try:
        return (await run_check(task.hidden_check, checkout, timeout=600)).passed
    finally:
        await asyncio.to_thread(git, repo, "worktree", "remove", "--force", str(checkout), check=False)
        shutil.rmtree(checkout, ignore_errors=True)


def summarise(report: EvalReport) -> list[dict[str, Any]]:
    """Per configuration: counts and rates of pass@1, any@N, selected@N, the selector loss, cost and time
    per task, and the cost per extra task solved relative to the first configuration."""
    rows = []
    for name in report.configs:
        mine = [r for r in report.results if r["config"] == name and r["status"] != "skipped"]
        count = len(mine)
        costs = [r["cost_usd"] for r in mine]
        cost = None if any(c is None for c in costs) else sum(costs)
        row = {"config": name, "tasks": count, "skipped": len([r for r in report.results if r["config"] == name]) - count,
               "pass@1": sum(r["first_solved"] for r in mine), "any@N": sum(r["any_solved"] for r in mine),
               "selected@N": sum(r["selected_solved"] for r in mine),
               "attempts": sum(len(r["attempts"]) for r in mine), "cost_usd": cost,
               "cost_per_task": None if cost is None or not count else cost / count,
               "seconds_per_task": sum(r["seconds"] for r in mine) / count if count else 0.0}
        row["selector_loss"] = row["any@N"] - row["selected@N"]
        for key in ("pass@1", "any@N", "selected@N", "selector_loss"):
            row[f"{key}_rate"] = row[key] / count if count else 0.0
        rows.append(row)
    base = rows[0] if rows else None
    for row in rows:
        extra = row["selected@N"] - base["selected@N"] if base else 0
        known = row["cost_usd"] is not None and base is not None and base["cost_usd"] is not None
        row["extra_solved"] = extra
        row["cost_per_extra_solved"] = (row["cost_usd"] - base["cost_usd"]) / extra if known and extra > 0 else None
    return rows
