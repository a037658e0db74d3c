"""The findings loop, written once on the kernel: review → fix → review again, until clean, capped.

``flotilla review`` runs it after its writer, a pipeline after its implementers (the security
reviewer's findings go back to them). One round: the reviewer (an agent run, read-only whatever its
agent file says) reads the diff of the branch from its base, the fix since its last review, and its
own earlier findings still open, and answers through ``submit_review`` (``_findings``); the runtime
stores the round's findings (a ``ReviewRound`` event, run meta ``rounds``) and decides whether the
loop ends; if not, each fixer gets only the blocking findings and the diff, as a work unit on the
same worktree and branch (committed, ``check`` run). Every part is a step or a child task, so a
durable loop resumes mid-round; nothing is merged here.

The job (JSON): ``parent_id``, ``root``, ``worktree`` (the unit name whose branch is reviewed),
``worktree_dir``, ``base_commit``, ``reviewer`` and ``fixers`` (``{"agent", "model"}``; no fixers:
review only), ``config`` (``rounds``, ``block_severity``, ``block_confidence``), ``check``, ``setup``,
``check_timeout_s``, ``max_turns``, ``budget_usd``, ``context`` (what the change is for) and ``key``
(the step prefix, unique per loop in its task).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..events import ReviewRound
from ..kernel.agent_run import run_agent_in
from ..kernel.executor import Executor
from ..kernel.unit import UnitResult, Worker, WorkUnit
from ..store import new_id
from ..workspaces import open_repo
from ..workspaces._git import git
from ..workspaces.worktree import branch_name
from ..workspaces import create_worktree, remove_worktree
from ..workspaces.sandbox import sandbox_for
from ._findings import OPEN, TEST_PATH, Finding, apply_fix, apply_review, decide, submission, written_lines

MAX_DIFF = 60_000

REVIEW_PROMPT = """{context}

Review the change on this branch (round {round} of at most {rounds}). Its diff from the base is below;
the files are in your working folder, read-only, to read around it. Report real defects only, each
with a priority P0 (worst) to P3, a confidence from 0 to 1, the file and a short line range: prefer no
finding over a weak one. Findings at {severity} or worse with confidence {confidence} or more block the
change; the others are advisory.{earlier}{check}

Call submit_review with your verdict and findings.

```diff
{diff}
```{fix}"""

FIX_PROMPT = """A reviewer found these blocking problems in the change on this branch. Fix them in place
(do not commit: flotilla commits your work when you finish). If you think one is wrong, leave it and say
why in your summary.{prove}

{findings}

The change so far, from its base:

```diff
{diff}
```"""


PROVE = """
A fix counts only when a test proves it: for each finding add a test that fails without your fix and passes
with it, then call submit_fix with each test's command (or, for a finding you think is wrong, why)."""


async def findings_loop(ex: Executor, job: dict[str, Any]) -> dict[str, Any]:
    """Runs the loop to its end; returns ``ended`` (clean, nothing blocking, not converging, rounds,
    review only, failed), ``reason``, ``verdict``, ``rounds``, ``findings`` and the runs by role."""
    session, key = ex.session, job["key"]
    ledger: list[Finding] = []
    rounds: list[dict[str, Any]] = []
    roles: dict[str, list[str]] = {"reviewer": [], "writer": []}
    fixed: dict[str, list[tuple[int, int]]] = {}
    last_head: str | None = None
    fixers = job.get("fixers") or []
    for n in range(1, job["config"]["rounds"] + 1):
        ids = await ex.step(f"{key}:ids:{n}", lambda: {"review": new_id(), "fix": [new_id() for _ in fixers]})
        head = await ex.step(f"{key}:head:{n}", lambda: _head(job))
        roles["reviewer"].append(ids["review"])
        prompt = _review_prompt(job, n, ledger, head, last_head, rounds)
        open_ids = [f.id for f in ledger if f.status in OPEN]
        closed = [f.id for f in ledger if f.status not in OPEN]
        review = await run_agent_in(ex, job["reviewer"]["agent"], prompt, _path(job), run_id=ids["review"],
                                    parent_run_id=job["parent_id"], model=job["reviewer"].get("model") or None,
                                    read_only=True, budget_usd=job.get("budget_usd"), budget_scope=job["parent_id"],
                                    max_turns=job.get("max_turns"), project=Path(job["root"]),
                                    submit=submission(open_ids, closed))
        if review.submitted is None:
            why = f"round {n}: the reviewer gave no valid review: {review.error or review.stop_reason}"
            return _ended(job, "failed", why, rounds, ledger, roles)
        done = await ex.step(f"{key}:round:{n}", lambda: _record(session, job, n, review.submitted, ledger, fixed,
                                                                 head, rounds))
        ledger = [Finding.from_json(f) for f in done["ledger"]]
        rounds.append(done["round"])
        if done["end"] is not None:
            return _ended(job, done["end"], done["reason"], rounds, ledger, roles)
        if not fixers:
            return _ended(job, "review only", f"round {n}: {done['reason']}; no writer to fix them", rounds, ledger,
                          roles)
        blocking = [f for f in ledger if f.status in OPEN and f.blocking]
        for i, fixer in enumerate(fixers):
            roles["writer"].append(ids["fix"][i])
            unit = WorkUnit.from_json(await ex.step(f"{key}:fix:{n}:{i}", lambda i=i, fixer=fixer: _fix_unit(
                job, fixer, ids["fix"][i], blocking).to_json()))
            handle = await ex.spawn("flotilla.unit", unit.to_json(), id=unit.run_id)
            result = UnitResult.from_dict(await ex.result(handle))
            rounds[-1].setdefault("fixes", []).append({"agent": fixer["agent"], "model": fixer.get("model") or "",
                                                       "status": result.status, "error": result.error,
                                                       "check": result.check, "commit": result.commit})
            if result.status != "done":
                why = f"round {n}: the writer's fix ended {result.status}: {result.error or ''}".rstrip(": ")
                return _ended(job, "failed", why, rounds, ledger, roles)
            if job.get("prove"):
                proofs = await ex.step(f"{key}:prove:{n}:{i}", lambda r=result: _prove(session, job, n, head, r))
                ledger = apply_fix(ledger, result.submitted, proofs)
                rounds[-1]["fixes"][-1].update(proofs=proofs, disputed=(result.submitted or {}).get("disputed", []))
        last_head = head
        fixed = await ex.step(f"{key}:fixed:{n}", lambda: _written(job, head))
    return _ended(job, "rounds", f"{job['config']['rounds']} rounds reached", rounds, ledger, roles)


def _path(job: dict[str, Any]) -> Path:
    """The reviewed worktree (``job["root"]`` is the repository's root already: no git call to find it)."""
    where = Path(job["worktree_dir"])
    return (where if where.is_absolute() else Path(job["root"]) / where).resolve() / job["parent_id"] / job["worktree"]


def _branch(job: dict[str, Any]) -> str:
    return branch_name(job["parent_id"], job["worktree"])


def _head(job: dict[str, Any]) -> str:
    return git(job["root"], "rev-parse", f"refs/heads/{_branch(job)}").stdout.strip()


def _diff(job: dict[str, Any], a: str, b: str) -> str:
    text = git(job["root"], "diff", a, b).stdout
    return text if len(text) <= MAX_DIFF else text[:MAX_DIFF] + f"\n… ({len(text) - MAX_DIFF} more characters cut)"


def _written(job: dict[str, Any], before: str) -> dict[str, list[tuple[int, int]]]:
    """The lines the fix just made wrote (``before`` → the branch head), by file."""
    return written_lines(git(job["root"], "diff", "-U0", before, _head(job)).stdout)


def _review_prompt(job: dict[str, Any], n: int, ledger: list[Finding], head: str, last: str | None,
                   rounds: list[dict[str, Any]]) -> str:
    config, still = job["config"], [f for f in ledger if f.status in OPEN]
    earlier = ""
    if still:
        listed = "\n".join(f"- {f.id} [{f.severity}, {f.confidence:g}] {f.file}:{f.line_start}-{f.line_end} "
                           f"{f.title}" + (f" (the writer disputes it: {f.dispute})" if f.status == "disputed" else "")
                           + (f" (a test proved the fix: `{f.proof['command']}`)" if (f.proof or {}).get("proven")
                              else "") for f in still)
        earlier = ("\n\nYour earlier findings still open:\n" + listed + "\nFor each, say whether the new diff "
                   "resolves it (`resolved`), whether you now think it was wrong (`withdrawn`), or report it again "
                   "with the same id if it is still open.")
    fixes = (rounds[-1].get("fixes") or []) if rounds else []
    checks = [f["check"] for f in fixes if f.get("check")]
    check = f"\n\nThe check `{job['check']}` {'passed' if checks[-1]['passed'] else 'FAILED'} after the last fix." \
        if checks else ""
    fix = f"\n\nThe fix since your last review:\n\n```diff\n{_diff(job, last, head)}\n```" if last else ""
    return REVIEW_PROMPT.format(context=job.get("context") or "", round=n, rounds=config["rounds"],
                                severity=config["block_severity"], confidence=config["block_confidence"],
                                earlier=earlier, check=check, diff=_diff(job, job["base_commit"], head), fix=fix)


def _record(session: Any, job: dict[str, Any], n: int, review: dict[str, Any], ledger: list[Finding],
            fixed: dict[str, list[tuple[int, int]]], head: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Applies round ``n``'s review, decides, and stores the round (event and run meta)."""
    after = apply_review([Finding.from_json(f.to_json()) for f in ledger], n, review, job["config"])
    end, reason = decide(n, review, after, job["config"]["rounds"], {k: [tuple(r) for r in v] for k, v in fixed.items()})
    reported = {r["id"] for r in review["findings"]}
    row = {"round": n, "head": head, "verdict": review["verdict"], "reported": sorted(reported),
           "resolved": list(review.get("resolved", [])), "withdrawn": list(review.get("withdrawn", [])),
           "findings": [f.to_json() for f in after if f.id in reported]}
    session.emit(ReviewRound(run_id=job["parent_id"], round=n, verdict=review["verdict"], findings=row["findings"],
                             resolved=row["resolved"], withdrawn=row["withdrawn"], ended=end))
    session.store.update_meta(job["parent_id"], rounds=[*rounds, row])
    return {"ledger": [f.to_json() for f in after], "round": row, "end": end, "reason": reason}


def _fix_unit(job: dict[str, Any], fixer: dict[str, Any], run_id: str, blocking: list[Finding]) -> WorkUnit:
    listed = "\n\n".join(f"- {f.id} [{f.severity}, confidence {f.confidence:g}] {f.file}:{f.line_start}-{f.line_end}: "
                         f"{f.title}\n  {f.body}" + (f"\n  Suggested fix: {f.suggested_fix}" if f.suggested_fix else "")
                         for f in blocking)
    return WorkUnit(name=job["worktree"], parent_id=job["parent_id"], run_id=run_id, root=job["root"],
                    base_commit=job["base_commit"],
                    instructions=FIX_PROMPT.format(findings=listed, prove=PROVE if job.get("prove") else "", diff=_diff(job, job["base_commit"], _head(job))),
                    worker=Worker(agent=fixer["agent"], model=fixer.get("model") or ""), check=job.get("check"),
                    setup=job.get("setup"), worktree_dir=job["worktree_dir"], max_turns=job.get("max_turns"),
                    check_timeout_s=job.get("check_timeout_s", 600.0), budget_usd=job.get("budget_usd"),
                    budget_scope=job["parent_id"],
                    submit={"kind": "fix_proofs", "args": {"blocking": [f.id for f in blocking]}} if job.get("prove")
                    else None)


def _ended(job: dict[str, Any], ended: str, reason: str, rounds: list[dict[str, Any]], ledger: list[Finding],
           roles: dict[str, list[str]]) -> dict[str, Any]:
    verdict = rounds[-1]["verdict"] if rounds else None
    return {"ended": ended, "reason": reason, "verdict": verdict, "rounds": rounds,
            "findings": [f.to_json() for f in ledger], "runs": roles}


async def _prove(session: Any, job: dict[str, Any], n: int, before: str, result: UnitResult) -> list[dict[str, Any]]:
    """Runs each proof both ways: on the branch before the fix with only the fix's test files added
    (it must fail), and on the branch after it (it must pass)."""
    proofs = (result.submitted or {}).get("proofs", [])
    if not proofs:
        return []
    repo = open_repo(Path(job["root"]))
    changed = git(repo.root, "diff", "--name-only", before, result.commit or before).stdout.split()
    tests = [f for f in changed if TEST_PATH.search(f)]
    sandbox = sandbox_for(session.settings_for(Path(job["root"]))).for_checks()
    old = create_worktree(repo, job["parent_id"], f"prove-{n}", before, directory=job["worktree_dir"])
    try:
        if tests:
            git(old.path, "checkout", result.commit, "--", *tests)
        out = []
        for p in proofs:
            failed = await old.run(p["command"], timeout=job.get("check_timeout_s", 600.0), sandbox=sandbox)
            passed = await _main(job).run(p["command"], timeout=job.get("check_timeout_s", 600.0), sandbox=sandbox)
            out.append({"finding": p["finding"], "command": p["command"], "tests": tests,
                        "failed_before": not failed.passed, "passed_after": passed.passed,
                        "proven": not failed.passed and passed.passed})
        return out
    finally:
        remove_worktree(repo, old.path, branch=old.branch)


def _main(job: dict[str, Any]) -> Any:
    return create_worktree(open_repo(Path(job["root"])), job["parent_id"], job["worktree"], job["base_commit"],
                           directory=job["worktree_dir"])
