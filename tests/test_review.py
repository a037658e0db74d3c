"""The findings loop through `Session.review` on real git with scripted writer and reviewer models: clean
after one round, the round cap, non-convergence, an invalid review sent back, review of an existing branch."""

from __future__ import annotations

import sys

from review_support import FIXED, finding, review, run_review, write
from test_race_support import CHECK, branches, make_repo, sh, worktrees


async def test_clean_after_one_round_leaves_a_branch_and_merges_nothing(tmp_path):
    repo = make_repo(tmp_path / "r")
    head = sh(repo, "git", "rev-parse", "HEAD")
    result, store, w, r = await run_review(repo, write(FIXED), [review("clean", finding("nit", "P3", 0.9))],
                                           check=CHECK)
    assert result["ended"] == "clean" and result["verdict"] == "clean" and len(result["rounds"]) == 1
    assert [(f["id"], f["status"], f["blocking"]) for f in result["findings"]] == [("nit", "open", False)]
    branch = result["branch"]
    assert branch == f"flotilla/{result['review_id']}/work" and branch in branches(repo)
    assert sh(repo, "git", "show", f"{branch}:calc.py") == FIXED.strip()
    assert sh(repo, "git", "rev-parse", "HEAD") == head and worktrees(repo) == [str(repo)]  # nothing merged
    assert any("flotilla merge" in n for n in result["notes"])
    assert result["write"]["check"]["passed"]
    assert result["cost_usd"]["writer"] > 0 and result["cost_usd"]["reviewer"] > 0
    # the reviewer was read-only and saw the diff
    assert "+    return a + b" in str(r.calls[0].messages[0].content)
    assert {t.name for t in r.calls[0].tools} >= {"submit_review", "Read"} and "Write" not in {t.name for t in r.calls[0].tools}
    (event,) = store.events(result["review_id"], "ReviewRound")
    assert event["round"] == 1 and event["findings"][0]["id"] == "nit" and event["findings"][0]["round"] == 1


async def test_the_writer_gets_only_blocking_findings_and_the_reviewer_says_what_it_resolved(tmp_path):
    repo = make_repo(tmp_path / "r")
    reviewer = [review("changes_needed", finding("sign", "P0", 0.95), finding("style", "P2", 0.9),
                       finding("maybe", "P1", 0.3)),
                review("clean", resolved=["sign", "maybe"], withdrawn=["style"])]
    writer = write("def add(a, b):\n    return a\n") + write(FIXED, summary="fixed the sign")
    result, store, w, r = await run_review(repo, writer, reviewer)
    assert result["ended"] == "clean" and len(result["rounds"]) == 2
    assert {f["id"]: f["status"] for f in result["findings"]} == {"sign": "fixed", "style": "withdrawn",
                                                                  "maybe": "fixed"}
    fix_prompt = str(w.calls[2].messages[0].content)
    assert "sign" in fix_prompt and "style" not in fix_prompt and "maybe" not in fix_prompt  # below the thresholds
    second = str(r.calls[1].messages[0].content)
    assert "earlier findings still open" in second and "The fix since your last review" in second
    assert sh(repo, "git", "show", f"{result['branch']}:calc.py") == FIXED.strip()


async def test_the_loop_is_capped_at_rounds(tmp_path):
    repo = make_repo(tmp_path / "r")
    again = review("changes_needed", finding("sign"))
    reviewer = [review("changes_needed", finding("sign")), again]
    writer = write("def add(a, b):\n    return a\n") + write("def add(a, b):\n    return b\n")
    result, *_ = await run_review(repo, writer, reviewer, rounds=2)
    assert result["ended"] == "rounds" and len(result["rounds"]) == 2 and "2 rounds reached" in result["reason"]
    assert result["findings"][0]["status"] == "open" and result["findings"][0]["returned"] == 1


async def test_new_blocking_findings_while_old_ones_return_is_not_converging(tmp_path):
    repo = make_repo(tmp_path / "r")
    reviewer = [review("changes_needed", finding("a", lines=(1, 1))),
                review("changes_needed", finding("a", lines=(1, 1)), finding("b", file="test_calc.py"))]
    writer = write("def add(a, b):\n    return a\n") + write("def add(a, b):\n    return b\n")
    result, *_ = await run_review(repo, writer, reviewer, rounds=5)
    assert result["ended"] == "not converging" and "keep returning (a)" in result["reason"]
    assert len(result["rounds"]) == 2


async def test_a_finding_on_the_lines_the_last_fix_wrote_is_not_converging(tmp_path):
    repo = make_repo(tmp_path / "r")
    reviewer = [review("changes_needed", finding("a", lines=(1, 1))),
                review("changes_needed", finding("undo", lines=(2, 2)), resolved=["a"])]
    writer = write("def add(a, b):\n    return a\n") + write(FIXED)
    result, *_ = await run_review(repo, writer, reviewer, rounds=5)
    assert result["ended"] == "not converging" and "lines the previous fix wrote" in result["reason"]


async def test_an_invalid_review_goes_back_to_the_reviewer_with_the_errors(tmp_path):
    repo = make_repo(tmp_path / "r")
    bad = review("looks fine", finding("x", "P9", 2.0, file="/etc/passwd", lines=(5, 2)))
    result, store, w, r = await run_review(repo, write(FIXED), [bad, review("clean")])
    assert result["ended"] == "clean"
    refusal = str(r.calls[1].messages[-1].content)
    for said in ("`verdict` must be", "`severity` must be one of", "`confidence` must be", "relative path",
                 "start ≤ end"):
        assert said in refusal, said


async def test_a_reviewer_that_never_reviews_validly_fails_the_loop(tmp_path):
    repo = make_repo(tmp_path / "r")
    bad = review("maybe")
    result, *_ = await run_review(repo, write(FIXED), [bad, bad, bad])
    assert result["ended"] == "failed" and result["status"] == "failed"
    assert "no valid review" in result["reason"] and "3 tries" in result["reason"]


async def test_an_earlier_finding_left_unaccounted_is_sent_back(tmp_path):
    repo = make_repo(tmp_path / "r")
    reviewer = [review("changes_needed", finding("sign")), review("clean"), review("clean", resolved=["sign"])]
    writer = write("def add(a, b):\n    return a\n") + write(FIXED)
    result, store, w, r = await run_review(repo, writer, reviewer)
    assert result["ended"] == "clean"
    assert "say what became of the earlier findings sign" in str(r.calls[2].messages[-1].content)


async def test_review_of_an_existing_branch_without_a_writer(tmp_path):
    repo = make_repo(tmp_path / "r")
    sh(repo, "git", "switch", "-q", "-c", "feature")
    (repo / "calc.py").write_text(FIXED)
    sh(repo, "git", "commit", "-qam", "fix add")
    sh(repo, "git", "switch", "-q", "main")
    result, store, w, r = await run_review(repo, [], [review("changes_needed", finding("sign"))], task=None,
                                           branch="feature", base="main")
    assert result["ended"] == "review only" and result["branch"] == "feature" and result["write"] is None
    assert "+    return a + b" in str(r.calls[0].messages[0].content)
    assert [b for b in branches(repo) if b.startswith("flotilla/")] == [] and worktrees(repo) == [str(repo)]
    assert result["cost_usd"]["writer"] == 0


async def test_a_same_lab_reviewer_is_warned_about_not_refused(tmp_path):
    from flotilla.patterns.review import lab

    assert lab("anthropic:claude-sonnet-4") == lab("openrouter:anthropic/claude-opus-4") == "anthropic"
    assert lab("openai:gpt-5") == "openai" and lab("gemini:gemini-2.5-pro") == "google"
    repo = make_repo(tmp_path / "r")
    result, *_ = await run_review(repo, [], [*write(FIXED), review("clean")], writer="scripted:gpt-reviewer")
    assert result["ended"] == "clean" and any("same lab" in n for n in result["notes"])


async def test_a_race_winner_goes_through_the_loop_before_it_is_offered_for_merge(tmp_path):
    from review_support import session

    repo = make_repo(tmp_path / "r")
    head = sh(repo, "git", "rev-parse", "HEAD")
    writer = write("def add(a, b):\n    return a + b if a else b\n") + write(FIXED, summary="fixed the finding")
    s, w, r = session(repo, writer, [review("changes_needed", finding("zero")), review("clean", resolved=["zero"])])
    async with s:
        outcome = await s.race("Fix add", models=[w.name], check=CHECK, review_with=r.name)
    assert outcome.winner is not None and outcome.merged is None  # the race merged nothing
    assert sh(repo, "git", "rev-parse", "HEAD") == head
    loop = outcome.review
    assert loop["ended"] == "clean" and loop["findings"][0]["status"] == "fixed"
    assert loop["rounds"][0]["fixes"][0]["check"]["passed"]
    assert sh(repo, "git", "show", f"{loop['branch']}:calc.py") == FIXED.strip()
    assert any(f"flotilla merge {loop['review_id']}" in n for n in outcome.notes)
    assert s.store.get_run(outcome.race_id)["result"]["review"]["review_id"] == loop["review_id"]


TIMES = "def add(a, b):\n    return a * b\n"


def proving(test: str, finding_id: str = "sign") -> list:
    from review_support import tool_call

    return [tool_call("Write", {"file_path": "calc.py", "content": FIXED}),
            tool_call("Write", {"file_path": "test_proof.py", "content": f"from calc import add\nassert {test}\n"}),
            tool_call("submit_fix", {"proofs": [{"finding": finding_id, "command": f"{sys.executable} -B test_proof.py"}]})]


async def test_prove_a_fix_counts_when_its_test_fails_before_and_passes_after(tmp_path):
    repo = make_repo(tmp_path / "r")
    reviewer = [review("changes_needed", finding("sign")), review("clean", resolved=["sign"])]
    result, store, w, r = await run_review(repo, write(TIMES) + proving("add(2, 3) == 5"), reviewer, prove=True)
    assert result["ended"] == "clean"
    (f,) = result["findings"]
    assert f["status"] == "fixed" and f["proof"]["failed_before"] and f["proof"]["passed_after"]
    assert f["proof"]["tests"] == ["test_proof.py"]
    assert "a test proved the fix" in str(r.calls[1].messages[0].content)
    assert [b for b in branches(repo) if "prove" in b] == []


async def test_prove_a_test_that_passes_before_the_fix_proves_nothing(tmp_path):
    repo = make_repo(tmp_path / "r")
    reviewer = [review("changes_needed", finding("sign")), review("clean", resolved=["sign"])]
    result, *_ = await run_review(repo, write(TIMES) + proving("add(0, 0) == 0"), reviewer, prove=True, rounds=2)
    (f,) = result["findings"]
    assert f["status"] == "open" and not f["proof"]["failed_before"] and f["proof"]["passed_after"]
    assert "no test proved the fix" in f["note"]
    assert result["ended"] == "rounds"


async def test_prove_the_writer_may_dispute_a_finding_and_the_reviewer_withdraw_it(tmp_path):
    from review_support import tool_call

    repo = make_repo(tmp_path / "r")
    dispute = [tool_call("submit_fix", {"proofs": [], "disputed": [{"finding": "sign", "reason": "it is intended"}]})]
    reviewer = [review("changes_needed", finding("sign")), review("clean", withdrawn=["sign"])]
    result, store, w, r = await run_review(repo, write(TIMES) + dispute, reviewer, prove=True)
    assert result["ended"] == "clean"
    assert result["findings"][0]["status"] == "withdrawn" and result["findings"][0]["dispute"] == "it is intended"
    assert "the writer disputes it: it is intended" in str(r.calls[1].messages[0].content)
    from flotilla.patterns._review_report import render

    assert "the writer disputed it" in render(result)
