"""Each selection strategy on hand-built attempt results: ties, all-fail, one passing, judges that fail."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from flotilla.patterns._attempt import Attempt
from flotilla.patterns.selection import Candidate, normalise_diff, select
from flotilla.patterns.selection._model_judge import COMPARE, ModelJudge, parse_better
from flotilla.testing import FunctionModel, ScriptedModel, reply


def attempt(name: str, passed: bool = True, lines: int = 2, cost: float = 0.01, seconds: float = 1.0) -> Attempt:
    return Attempt(name=name, agent="implementer", model="scripted:x", run_id=f"run-{name}", status="done",
                   check={"passed": passed, "summary": "1 passed" if passed else "1 failed"}, added=lines,
                   cost_usd=cost, seconds=seconds)


def diff(body: str, path: str = "calc.py") -> str:
    return f"diff --git a/{path} b/{path}\nindex 1..2 100644\n--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n{body}\n"


def pick(strategy, candidates, judge=None):
    return asyncio.run(select(strategy, candidates, judge))


def free(name: str, usage: object) -> float:
    return 0.0


# -- checks ---------------------------------------------------------------------------------------

def test_checks_picks_the_passing_attempt_with_the_smaller_diff():
    chosen = pick("checks", [Candidate(attempt("a1", lines=9)), Candidate(attempt("a2", lines=3)),
                             Candidate(attempt("a3", passed=False, lines=1))])
    assert (chosen.winner, chosen.calls) == ("a2", 0)
    assert chosen.reason == "smaller diff (3 lines against a1's 9)"


def test_checks_tie_is_broken_by_name_and_all_fail_has_no_winner():
    tie = pick("checks", [Candidate(attempt("a2")), Candidate(attempt("a1"))])
    assert tie.winner == "a1" and "tied with a2" in tie.reason
    none = pick("checks", [Candidate(attempt("a1", passed=False)), Candidate(attempt("a2", passed=False))])
    assert none.winner is None and none.reason == "no attempt passed its check"
    assert pick("checks", []).winner is None


# -- checks+judge ---------------------------------------------------------------------------------

def scorer(scores: dict[str, float]) -> FunctionModel:
    """A judge model scoring a diff by the marker it carries (``# a1`` …)."""
    def answer(request):
        text = request.messages[-1].content
        name = re.search(r"# (a\d)", text).group(1)
        return json.dumps({"score": scores[name], "reasons": f"{name} looks {scores[name]:g}"})
    return FunctionModel(answer, name="scripted:judge")


def test_checks_judge_scores_only_passing_attempts_and_the_score_beats_size():
    model = scorer({"a1": 9, "a2": 4})
    candidates = [Candidate(attempt("a1", lines=20), diff("+x = 1  # a1")),
                  Candidate(attempt("a2", lines=2), diff("+x = 2  # a2")),
                  Candidate(attempt("a3", passed=False), diff("+x = 3  # a3"))]
    chosen = pick("checks+judge", candidates, ModelJudge(model, "spec", lambda name, usage: 0.5))
    assert chosen.winner == "a1" and "judge scored it 9 against a2's 4" in chosen.reason
    assert (chosen.calls, chosen.cost_usd, len(model.calls)) == (2, 1.0, 2)
    assert chosen.scores == {"a1": [9.0, "a1 looks 9"], "a2": [4.0, "a2 looks 4"]}
    assert any("a2: 4/10" in line for line in chosen.log)


def test_checks_judge_tie_falls_to_the_ranking_and_a_silent_judge_is_no_score():
    tied = pick("checks+judge", [Candidate(attempt("a1", lines=8), diff("+a  # a1")),
                                 Candidate(attempt("a2", lines=4), diff("+b  # a2"))],
                ModelJudge(scorer({"a1": 7, "a2": 7}), "spec", lambda n, u: 0.0))
    assert tied.winner == "a2" and "smaller diff" in tied.reason
    mute = ScriptedModel([reply("no idea"), reply("still no")], name="scripted:judge")
    chosen = pick("checks+judge", [Candidate(attempt("a1"), diff("+a  # a1"))], ModelJudge(mute, "spec", free))
    assert chosen.winner == "a1" and chosen.calls == 2 and chosen.scores["a1"][0] is None


# -- pairwise -------------------------------------------------------------------------------------

def comparer(best: list[str]) -> FunctionModel:
    """A judge preferring, of the two attempts shown, the one whose diff marker comes first in ``best``."""
    def answer(request):
        assert request.system == COMPARE
        text = request.messages[0].content
        a, b = re.findall(r"# (a\d+)", text)
        better = "A" if best.index(a) < best.index(b) else "B"
        return json.dumps({"better": better, "reason": f"{[a, b]['AB'.index(better)]} handles more cases"})
    return FunctionModel(answer, name="scripted:judge")


def field(n: int, failing: tuple[str, ...] = ()) -> list[Candidate]:
    return [Candidate(attempt(f"a{i}", passed=f"a{i}" not in failing, lines=i), diff(f"+v = {i}  # a{i}"),
                      summary=f"did it the a{i} way") for i in range(1, n + 1)]


def test_pairwise_runs_a_knockout_tournament_with_a_bye():
    model = comparer(["a4", "a3", "a5", "a1", "a2"])
    chosen = pick("pairwise", field(5), ModelJudge(model, "spec", lambda n, u: 0.25))
    assert chosen.winner == "a4"
    assert chosen.calls == 4 and chosen.cost_usd == 1.0  # k contenders, k - 1 matches
    assert chosen.log[:3] == ["round 1: a1 vs a2 → a1: a1 handles more cases",
                              "round 1: a3 vs a4 → a4: a4 handles more cases", "round 1: a5 has a bye"]
    assert "tournament of 5 passing attempts in 3 rounds" in chosen.reason
    assert "did it the a3 way" in model.calls[1].messages[0].content  # summaries are shown


def test_pairwise_skips_failing_attempts_and_handles_one_or_none_passing():
    model = comparer(["a3", "a1"])
    assert pick("pairwise", field(3, failing=("a2",)), ModelJudge(model, "spec", free)).winner == "a3"
    assert all("# a2" not in c.messages[0].content for c in model.calls)
    lone = pick("pairwise", field(2, failing=("a1",)), ModelJudge(comparer([]), "spec", free))
    assert (lone.winner, lone.calls) == ("a2", 0)
    assert pick("pairwise", field(2, failing=("a1", "a2")), ModelJudge(comparer([]), "spec", free)).winner is None


def test_pairwise_undecided_match_goes_to_the_better_ranked_attempt():
    mute = ScriptedModel([reply("hmm"), reply("hmm again")], name="scripted:judge")
    chosen = pick("pairwise", field(2), ModelJudge(mute, "spec", free))
    assert chosen.winner == "a1" and chosen.calls == 2
    assert "no verdict" in chosen.log[0] and "goes through on the checks ranking" in chosen.log[0]


def test_parse_better():
    assert parse_better('{"better": "b", "reason": "r"}') == (1, "r")
    assert parse_better('I think {"better": "A"}') == (0, "")
    assert parse_better('{"better": "C"}') is None and parse_better("A") is None


# -- vote -----------------------------------------------------------------------------------------

def test_vote_clusters_diffs_equal_after_normalising_whitespace():
    same = "-    return a - b\n+    return a + b"
    spaced = "-  return   a - b\n+\treturn a  +  b\n+"
    candidates = [Candidate(attempt("a1", lines=1), diff("+    return b + a")),
                  Candidate(attempt("a2", lines=5), diff(same)),
                  Candidate(attempt("a3", lines=6), diff(spaced)),
                  Candidate(attempt("a4", passed=False), diff(same))]
    chosen = pick("vote", candidates)
    assert chosen.winner == "a2" and chosen.calls == 0
    assert chosen.reason == "2 of 3 passing attempts made this change (the biggest cluster); a2 is its best-ranked member"
    assert chosen.log == ["cluster of 2: a2, a3", "cluster of 1: a1"]


def test_vote_tie_goes_to_the_cluster_with_the_best_ranked_attempt_and_all_fail_has_none():
    candidates = [Candidate(attempt("a1", lines=9), diff("+x")), Candidate(attempt("a2", lines=1), diff("+y"))]
    chosen = pick("vote", candidates)
    assert chosen.winner == "a2" and "tie at 1" in chosen.reason
    assert pick("vote", [Candidate(attempt("a1", passed=False), diff("+x"))]).winner is None
    agree = pick("vote", [Candidate(attempt("a1"), diff("+x")), Candidate(attempt("a2"), diff("+ x "))])
    assert agree.winner == "a1" and agree.reason.startswith("all 2 passing attempts made the same change")


def test_normalise_diff_keeps_files_apart_and_drops_blank_changes():
    assert normalise_diff(diff("+x = 1", "a.py")) != normalise_diff(diff("+x = 1", "b.py"))
    assert normalise_diff(diff("+x  =  1\n+   \n-")) == normalise_diff(diff("+x = 1"))


@pytest.mark.parametrize("strategy", ["checks", "checks+judge", "pairwise", "vote"])
def test_every_strategy_agrees_when_only_one_attempt_passes(strategy):
    candidates = field(3, failing=("a1", "a3"))
    chosen = pick(strategy, candidates, ModelJudge(scorer({"a2": 5}), "spec", free))
    assert chosen.winner == "a2" and chosen.strategy == strategy
