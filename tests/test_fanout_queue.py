"""Fan-out's gates on real git: proofs that prove nothing, merge conflicts, a check turned red by a merge,
budgets before spawn and per call, parallelism, approval."""

from __future__ import annotations

import asyncio

from fanout_support import CHECK, PLAN, WORKERS, ScriptedModel, fanout, fix, lead_steps, make_shop, reply, \
    session, slice_plan, tool_call
from test_race_support import branches, sh

JOB = "Fix the bugs the failing tests show."


def statuses(result):
    return {s["id"]: s["status"] for s in result["slices"]}


def lead(plan=PLAN):
    return ScriptedModel(lead_steps(plan), name="scripted:lead")


async def test_a_proof_that_passes_on_the_base_proves_nothing_and_its_worker_never_starts(tmp_path):
    repo = make_shop(tmp_path / "shop")
    plan = {"slices": [slice_plan("prices", "discount"), {**slice_plan("names", "names"), "proof": "true"}]}
    result, store = await fanout(repo, lead(plan), {"prices": WORKERS["prices"], "names": []}, yes=True)
    assert statuses(result) == {"prices": "merged", "names": "proves nothing"}
    names = next(s for s in result["slices"] if s["id"] == "names")
    assert names["proof_before"]["passed"] and "proof_after" not in names
    assert store.list_runs(parent_id=result["fanout_id"], kind="agent") and names["run_id"] not in {
        r["id"] for r in store.list_runs(parent_id=result["fanout_id"])}


async def test_a_slice_that_conflicts_with_an_earlier_merge_stays_on_its_branch(tmp_path):
    repo = make_shop(tmp_path / "shop")
    plan = {"slices": [slice_plan("prices", "discount"), slice_plan("names", "names")]}
    both = {k: [tool_call("Edit", {"file_path": "shop/basics.py", "old_string": "sum(items)",
                                   "new_string": f"sum(items)  # {k}"}), *WORKERS[k]] for k in ("prices", "names")}
    result, _store = await fanout(repo, lead(plan), both, yes=True)
    assert statuses(result) == {"prices": "merged", "names": "conflict"}
    names = next(s for s in result["slices"] if s["id"] == "names")
    assert "shop/basics.py" in names["merge_reason"] and names["proof_after"]["passed"]
    assert set(names["files_touched"]) == {"shop/basics.py", "shop/names.py"}  # one more than planned
    assert f"flotilla/{result['fanout_id']}/names" in branches(repo)
    assert "# prices" in (repo / "shop/basics.py").read_text() and "{first} {first}" in (repo / "shop/names.py").read_text()
    assert any("names" in n for n in result["notes"])


async def test_a_merge_that_turns_the_check_red_is_undone_and_the_next_slice_goes_on(tmp_path):
    repo = make_shop(tmp_path / "shop")
    check = CHECK + " && python3 -c \"from shop import prices, names; assert not (hasattr(prices, 'LOUD') " \
                    "and hasattr(names, 'LOUD'))\""
    plan = {"slices": [slice_plan("prices", "discount"), slice_plan("names", "names"), slice_plan("dates", "dates")]}
    loud = {k: [tool_call("Edit", {"file_path": f"shop/{k}.py", "old_string": "def ", "new_string": "LOUD = 1\n\n\ndef "}),
                *WORKERS[k]] for k in ("prices", "names")}
    dates = fix("shop/dates.py", "year % 4 == 0", "year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)", "fixed")
    result, _store = await fanout(repo, lead(plan), {**loud, "dates": dates}, yes=True, check=check)
    assert statuses(result) == {"prices": "merged", "names": "red after merge", "dates": "merged"}
    names = next(s for s in result["slices"] if s["id"] == "names")
    assert names["check"]["passed"] and not names["check_after_merge"]["passed"]
    assert "the check failed after merging it" in names["merge_reason"]
    assert "LOUD" not in (repo / "shop/names.py").read_text() and "% 400" in (repo / "shop/dates.py").read_text()
    assert sh(repo, "git", "status", "--porcelain") == ""


async def test_the_total_budget_is_checked_before_each_worker_starts(tmp_path):
    planned = make_shop(tmp_path / "a" / "shop")  # the lead alone, to learn what it spends
    only, store = await fanout(planned, lead(), {}, plan_only=True)
    lead_cost = store.cost(store.family(only["fanout_id"]))
    repo = make_shop(tmp_path / "b" / "shop")
    result, store = await fanout(repo, lead(), {k: [] for k in WORKERS}, yes=True, budget_usd=lead_cost)
    assert statuses(result) == {"prices": "budget", "names": "budget", "dates": "budget"}
    assert all("not started" in s["error"] and "nothing left" in s["error"] for s in result["slices"])
    assert {r["id"] for r in store.list_runs(parent_id=result["fanout_id"])} == {
        store.get_run(result["fanout_id"])["meta"]["lead_run_id"]}
    assert "could not write its report" in result["report"]
    assert store.cost(store.family(result["fanout_id"])) <= lead_cost + 1e-9


async def test_a_slice_budget_caps_each_workers_calls(tmp_path):
    repo = make_shop(tmp_path / "shop")
    made: list[ScriptedModel] = []
    scripts = {k: WORKERS[k] for k in ("prices", "names")}
    async with session(repo, lead({"slices": PLAN["slices"][:2]}), scripts) as s:
        s._models.update({f"scripted:{k}": (lambda k=k: made.append(ScriptedModel(list(scripts[k]), name=f"scripted:{k}"))
                                            or made[-1]) for k in scripts})
        result = await s.fanout(JOB, lead="scripted:lead", models=["scripted:prices", "scripted:names"], check=CHECK,
                                yes=True, slice_budget_usd=0.0005, budget_usd=5.0)
    assert statuses(result) == {"prices": "budget", "names": "budget"}
    assert all("budget" in s["error"] for s in result["slices"])
    assert made and all(m.calls == [] for m in made)  # refused before the call, by the harness


async def test_parallel_one_runs_the_workers_one_after_another(tmp_path):
    repo = make_shop(tmp_path / "shop")
    result, _store = await fanout(repo, lead(), WORKERS, yes=True, parallel=1)
    rows = sorted(result["slices"], key=lambda s: s["started_at"])
    for earlier, later in zip(rows, rows[1:]):
        assert earlier["started_at"] + earlier["seconds"] <= later["started_at"]


async def test_a_rejected_plan_spends_nothing_on_workers(tmp_path):
    repo = make_shop(tmp_path / "shop")
    seen = []
    async with session(repo, lead(), {k: [] for k in WORKERS}) as s:
        result = await s.fanout(JOB, lead="scripted:lead", models=["scripted:prices"], check=CHECK,
                                approve=lambda slices: seen.append(slices) and False)
    assert result["status"] == "rejected" and [x["id"] for x in seen[0]] == ["prices", "names", "dates"]
    assert len(result["slices"]) == 3 and all("status" not in x for x in result["slices"])
    assert [b for b in branches(repo) if b.startswith("flotilla/")] == []


async def test_the_run_waits_for_a_signal_to_approve_its_plan(tmp_path):
    repo = make_shop(tmp_path / "shop")
    async with session(repo, lead(), WORKERS) as s:
        running = asyncio.create_task(s.fanout(JOB, lead="scripted:lead", models=[f"scripted:{k}" for k in WORKERS],
                                               check=CHECK))
        while not (runs := s.store.list_runs(kind="fanout")) or \
                s.store.get_run(runs[0]["id"])["meta"].get("state") != "awaiting approval":
            assert not running.done(), running.result()
            await asyncio.sleep(0.05)
        waiting = s.store.get_run(runs[0]["id"])["meta"]
        assert [r["id"] for r in s.store.list_runs(parent_id=runs[0]["id"])] == [waiting["lead_run_id"]]
        s.signal(runs[0]["id"], "approve", True)
        result = await running
    assert statuses(result)["prices"] == "merged"
