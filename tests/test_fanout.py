"""Fan-out on real git with scripted models: plan, proofs, parallel workers, the merge queue, the report."""

from __future__ import annotations

from fanout_support import PLAN, WORKERS, fanout, fix, lead_steps, make_shop, reply, slice_plan, tool_call, \
    ScriptedModel
from test_race_support import branches, sh, worktrees


def statuses(result):
    return {s["id"]: s["status"] for s in result["slices"]}


async def test_proven_slices_merge_one_by_one_and_the_unproven_one_stays_on_its_branch(tmp_path):
    repo = make_shop(tmp_path / "shop")
    lead = ScriptedModel(lead_steps(), name="scripted:lead")
    result, store = await fanout(repo, lead, WORKERS, yes=True)
    assert statuses(result) == {"prices": "merged", "names": "merged", "dates": "unproven"}
    assert result["status"] == "partial" and result["merged"]
    rows = {s["id"]: s for s in result["slices"]}
    for sid in ("prices", "names"):  # the proof failed on the base, passed on the branch; the check after the merge
        assert not rows[sid]["proof_before"]["passed"] and rows[sid]["proof_after"]["passed"]
        assert rows[sid]["check"]["passed"] and rows[sid]["check_after_merge"]["passed"]
        assert rows[sid]["files_touched"] == [f"shop/{sid}.py"] and rows[sid]["cost_usd"] > 0
    assert not rows["dates"]["proof_after"]["passed"]
    # the base has both fixes (through the integration branch), not the wrong one
    assert "percent / 100" in (repo / "shop/prices.py").read_text() and "{last}" in (repo / "shop/names.py").read_text()
    assert "year % 100" not in (repo / "shop/dates.py").read_text()
    fid = result["fanout_id"]
    assert [b for b in branches(repo) if b.startswith("flotilla/")] == [f"flotilla/{fid}/dates"]
    assert worktrees(repo) == [str(repo)]
    log = sh(repo, "git", "log", "--format=%s", "-4")
    assert log.splitlines()[0].startswith(f"flotilla fanout {fid}: 2 slices")
    # the workers ran at once, each a unit run under the fan-out, one per slice
    children = store.list_runs(parent_id=fid)
    assert sorted(r["id"] for r in children) == sorted([s["run_id"] for s in result["plan"]]
                                                        + [store.get_run(fid)["meta"]["lead_run_id"]])
    assert max(r["started_at"] for r in rows.values()) < min(r["started_at"] + r["seconds"] for r in rows.values())
    # stored and shown: the plan in the run's meta, the report in its result
    record = store.get_run(fid)
    assert [s["id"] for s in record["meta"]["plan"]] == ["prices", "names", "dates"]
    assert record["result"]["report"].startswith("Two of three bugs")


async def test_the_lead_reads_the_summaries_only_however_much_the_workers_read(tmp_path):
    repo = make_shop(tmp_path / "shop")
    big = "SECRET_WORKER_CONTEXT = 1\n" * 4000  # ~100 KB each worker reads
    (repo / "shop" / "big.py").write_text(big)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "big")
    reading = {k: [tool_call("Read", {"file_path": "shop/big.py"}), *steps] for k, steps in WORKERS.items()}
    lead = ScriptedModel(lead_steps(), name="scripted:lead")
    result, _store = await fanout(repo, lead, reading, yes=True)
    assert statuses(result)["prices"] == "merged"
    planning, reporting = lead.calls[-2], lead.calls[-1]
    before = [m.model_dump_json() for m in planning.messages]
    after = [m.model_dump_json() for m in reporting.messages]
    assert after[:len(before)] == before  # the same conversation…
    grown = after[len(before):]  # …plus its plan call, "Accepted.", and the summaries
    assert len(grown) == 3 and "submit_plan" in grown[0] and "Accepted." in grown[1]
    assert "SECRET_WORKER_CONTEXT" not in "".join(after)
    assert "divides by 100" in grown[2] and len("".join(grown)) < 4000


async def test_an_invalid_plan_goes_back_to_the_lead_with_the_errors(tmp_path):
    repo = make_shop(tmp_path / "shop")
    bad = {"slices": [{"id": "prices", "title": "t", "instructions": "i", "files": [], "proof": ""},
                      {"id": "prices", "title": "t", "instructions": "i", "files": ["/etc/passwd"], "proof": "x"}]}
    steps = lead_steps()
    lead = ScriptedModel([tool_call("submit_plan", bad), *steps[1:]], name="scripted:lead")
    result, store = await fanout(repo, lead, WORKERS, yes=True)
    assert statuses(result)["prices"] == "merged"
    refusal = str(lead.calls[1].messages[-1].content)
    assert "`proof` must be a non-empty string" in refusal and "used twice" in refusal and "relative paths" in refusal


async def test_a_lead_that_never_plans_validly_fails_the_run_before_any_worker(tmp_path):
    repo = make_shop(tmp_path / "shop")
    lead = ScriptedModel([reply("I think there are three bugs."), tool_call("submit_plan", {"slices": []}),
                          reply("still no plan")], name="scripted:lead")
    result, store = await fanout(repo, lead, WORKERS, yes=True)
    assert result["status"] == "failed" and "the lead gave no valid plan" in result["reason"]
    assert "no valid submit_plan after 3 tries" in result["reason"]
    assert result["slices"] == [] and [b for b in branches(repo) if b.startswith("flotilla/")] == []


async def test_overlapping_slices_are_joined_and_plan_only_stops_before_anything_runs(tmp_path):
    repo = make_shop(tmp_path / "shop")
    plan = {"slices": [slice_plan("prices", "discount"), {**slice_plan("names", "names"),
                                                            "files": ["shop/names.py", "./shop/prices.py"]},
                       slice_plan("dates", "dates")]}
    lead = ScriptedModel([tool_call("submit_plan", plan)], name="scripted:lead")
    result, store = await fanout(repo, lead, {}, plan_only=True)
    assert result["status"] == "planned"
    assert [(s["id"], s["joined"]) for s in result["plan"]] == [("prices+names", ["prices", "names"]),
                                                                 ("dates", [])]
    joined = result["plan"][0]
    assert joined["proof"].count("unittest") == 2 and "&&" in joined["proof"]
    assert set(joined["files"]) == {"shop/prices.py", "shop/names.py", "./shop/prices.py"}
    assert store.get_run(result["fanout_id"])["meta"]["plan"] == result["plan"]
    assert [b for b in branches(repo) if b.startswith("flotilla/")] == [] and worktrees(repo) == [str(repo)]
    from flotilla.patterns._fanout_plan import plan_table

    assert "joined prices, names: files overlap" in plan_table(result["plan"])
