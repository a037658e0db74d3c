"""What the pages show, read from the run store: runs with their family's tokens and cost, what needs
a person, a race's attempts (live from events while it runs, from its result when it is done), diffs.

Reads only; the few queries that a page needs for many runs at once (a page of the runs list) are
one statement each, so that the list stays fast with thousands of runs.
"""

from __future__ import annotations

import time
from typing import Any

from ..models.usage import rows_cost
from ..workspaces.gc import pid_alive

PAGE = 50
_FAMILY_USAGE = """
WITH RECURSIVE fam(root, id) AS (
    SELECT id, id FROM runs WHERE id IN ({marks})
    UNION ALL SELECT fam.root, runs.id FROM runs JOIN fam ON runs.parent_id = fam.id)
SELECT fam.root AS root, usage.provider AS provider, usage.model AS model, usage.role AS role, COUNT(*) AS calls,
       SUM(usage.input_tokens) AS input_tokens,
       SUM(usage.output_tokens) AS output_tokens, SUM(usage.cache_read_tokens) AS cache_read_tokens,
       SUM(usage.cache_write_tokens) AS cache_write_tokens, SUM(usage.cost_usd) AS cost_usd
FROM fam JOIN usage ON usage.run_id = fam.id GROUP BY fam.root, usage.provider, usage.model, usage.role
"""


def family_usage(store: Any, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Usage rows (by provider, model and role) of each run with everything under it, in one query."""
    usage: dict[str, list[dict[str, Any]]] = {}
    if run_ids:
        for u in store.execute(_FAMILY_USAGE.format(marks=",".join("?" * len(run_ids))), tuple(run_ids)):
            usage.setdefault(u["root"], []).append(dict(u))
    return usage


def runs_page(store: Any, catalog: Any, *, kind: str | None = None, status: str | None = None,
              page: int = 0) -> list[dict[str, Any]]:
    """A page of top-level runs, newest first, each with its family's models, tokens, cost and duration."""
    rows = store.list_runs(kind=kind or None, status=status or None, top_level=True, limit=PAGE + 1,
                           offset=page * PAGE)
    usage = family_usage(store, [r["id"] for r in rows])
    for r in rows:
        mine = usage.get(r["id"], [])
        r["models"] = sorted({f"{u['provider']}:{u['model']}" for u in mine}) or _planned_models(r)
        r["tokens"] = sum((u["input_tokens"] or 0) + (u["output_tokens"] or 0) + (u["cache_read_tokens"] or 0)
                          + (u["cache_write_tokens"] or 0) for u in mine)
        r["cost"] = rows_cost(mine, catalog) if mine else None
        r["agents"] = sorted({r["meta"]["agent"]} if r["meta"].get("agent") else
                             {a.get("agent") for a in r["meta"].get("attempts", []) if a.get("agent")})
        r["state"] = shown_status(r, store)
        r["seconds"] = (r["updated_at"] if r["status"] != "running" else time.time()) - r["created_at"]
    return rows


def _planned_models(run: dict[str, Any]) -> list[str]:
    meta = run["meta"]
    if meta.get("model"):
        return [meta["model"]]
    return sorted({a.get("model") or "default" for a in meta.get("attempts", [])})


def shown_status(run: dict[str, Any], store: Any = None) -> str:
    """The status a person should read: a run the store calls running whose process is gone crashed,
    unless (given the ``store``) its durable workflow has been taken up by a live executor since (a
    resumed run's row still names the process that started it).
    A run waiting at an approval gate is waiting, whether its process is alive or not (the gate is
    durable: the answer continues it, as ``flotilla runs`` says)."""
    if run["status"] == "running" and (run.get("meta") or {}).get("state") == "awaiting approval":
        return "waiting"
    if run["status"] == "running" and run.get("pid") and not pid_alive(run["pid"]):
        return "running" if store is not None and _resumed(store, run["id"]) else "crashed"
    return run["status"]


def process_gone(run: dict[str, Any], store: Any) -> bool:
    """Whether nothing runs the run now: its process is dead and no live executor took its workflow up."""
    return bool(run.get("pid")) and not pid_alive(run["pid"]) and not _resumed(store, run["id"])


_EXECUTOR = """SELECT e.host AS host, e.pid AS pid, e.beat_at AS beat_at FROM workflow_status w
               JOIN flotilla_executors e ON e.executor_id = w.executor_id
               WHERE w.workflow_uuid = ? AND w.status = 'PENDING'"""
DEAD_AFTER_S = 15.0
"""As ``[worker] dead_after_s``: an executor on another host that has not beaten for this long is dead."""


def _resumed(store: Any, run_id: str) -> bool:
    """Whether the run's durable workflow belongs to an executor that is alive (the durable runtime's
    own heartbeat table, read as SQL so that a listing never starts the runtime)."""
    import socket
    import sqlite3

    try:
        rows = store.execute(_EXECUTOR, (run_id,))
    except sqlite3.OperationalError:  # no durable tables in this store
        return False
    for row in rows:
        if row["host"] == socket.gethostname():
            return pid_alive(row["pid"])
        return time.time() - row["beat_at"] < DEAD_AFTER_S
    return False


def needs_you(store: Any) -> list[dict[str, Any]]:
    """Runs waiting for a person: an approval, a manual pick to merge, a crash to resume."""
    out = []
    for r in store.execute("SELECT id, kind, title FROM runs WHERE status = 'running' "
                           "AND json_extract(meta, '$.state') = 'awaiting approval' ORDER BY created_at DESC"):
        gated = r["kind"] == "pipeline"  # as `flotilla runs` says it: the page has approve and reject
        out.append({**dict(r), "why": "waiting: approve or reject" if gated else "waits for your approval"})
    for r in store.execute("SELECT id, kind, title FROM runs WHERE kind = 'race' AND json_extract(meta, '$.pick') = "
                           "'manual' AND json_extract(result, '$.winner') IS NOT NULL AND "
                           "json_extract(result, '$.merged') IS NULL ORDER BY created_at DESC LIMIT 20"):
        out.append({**dict(r), "why": "finished with --pick manual: pick an attempt to merge"})
    for r in store.execute("SELECT id, kind, title, status, pid FROM runs WHERE status = 'running' "
                           "AND parent_id IS NULL AND json_extract(meta, '$.state') IS NOT 'awaiting approval' "
                           "ORDER BY created_at DESC LIMIT 200"):
        if shown_status(dict(r), store) == "crashed":
            out.append({**dict(r), "why": "crashed: resume it, or gc to give it up"})
    return out


def attempts(store: Any, race: dict[str, Any]) -> list[dict[str, Any]]:
    """A race's attempts as the board shows them: the stored result once the race is done, else what
    the events and the attempts' own runs say so far."""
    if race["result"] and race["result"].get("attempts"):
        return race["result"]["attempts"]
    started = {e["attempt"]: e for e in store.events(race["id"], "AttemptStarted")}
    states = {e["unit"]: e["state"] for e in store.events(race["id"], "UnitState")}
    finished = {e["attempt"]: e for e in store.events(race["id"], "AttemptFinished")}
    checks = {e["attempt"]: e for e in store.events(race["id"], "CheckRan")}
    rows = []
    planned = race["meta"].get("attempts", [])
    usages = family_usage(store, [a["run_id"] for a in planned])
    for a in planned:
        name = a["name"]
        usage = usages.get(a["run_id"], [])
        check = checks.get(name)
        begun = started.get(name, {}).get("at")
        end = finished.get(name, {}).get("at")
        rows.append({**a, "status": finished.get(name, {}).get("status") or states.get(name)
                     or ("setup" if begun else "pending"),
                     "check": check and {"passed": check["passed"], "summary": check["summary"],
                                         "command": check["command"], "exit_code": check["exit_code"]},
                     "input_tokens": sum((u["input_tokens"] or 0) + (u["cache_read_tokens"] or 0)
                                         + (u["cache_write_tokens"] or 0) for u in usage),
                     "output_tokens": sum(u["output_tokens"] or 0 for u in usage),
                     "cost_usd": sum(u["cost_usd"] or 0 for u in usage),
                     "seconds": ((end or time.time()) - begun) if begun else 0.0,
                     "turns": sum(u["calls"] for u in usage if u["role"] == "executor")})
    return rows


def attempt_diff(race: dict[str, Any], name: str) -> str:
    """An attempt's diff (``patterns.race.attempt_diff``, as ``flotilla diff`` shows it), by its name."""
    from ..errors import UserError
    from ..patterns.race import attempt_diff as diff

    chosen = next((a for a in attempts_of(race) if a["name"] == name), None)
    if chosen is None:
        raise UserError(f"race {race['id']} has no attempt {name!r}")
    return diff(race, chosen)


def attempts_of(race: dict[str, Any]) -> list[dict[str, Any]]:
    return (race["result"] or {}).get("attempts") or race["meta"].get("attempts", [])


def tree(store: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's descendants as nested dicts (``children``), for a subagent tree."""
    rows = store.execute("""WITH RECURSIVE fam(id) AS (SELECT id FROM runs WHERE parent_id = ?
                            UNION ALL SELECT runs.id FROM runs JOIN fam ON runs.parent_id = fam.id)
                            SELECT runs.id, runs.kind, runs.title, runs.status, runs.parent_id, runs.pid
                            FROM runs JOIN fam ON runs.id = fam.id ORDER BY runs.created_at""", (run_id,))
    nodes = {r["id"]: {**dict(r), "children": []} for r in rows}
    top = []
    for node in nodes.values():
        (nodes[node["parent_id"]]["children"] if node["parent_id"] in nodes else top).append(node)
    return top
