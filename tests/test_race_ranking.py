"""Ranking, the judge's JSON, the estimate and the stored report: pure pieces of the race."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from flotilla.errors import ProviderError
from flotilla.models.catalog import Catalog
from flotilla.patterns._judge import judge_diff, parse_verdict
from flotilla.patterns._ranking import rank
from flotilla.patterns.race import RaceConfig, build_plans, estimate, report
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, fail, reply


@dataclass
class A:
    name: str
    eligible: bool = True
    judge_score: float | None = None
    lines_changed: int = 10
    cost_usd: float = 0.1
    seconds: float = 5.0
    place: int = 0
    reason: str = ""
    why_not: str = "its check failed (1 failed)"


def test_ranking_order_check_then_judge_then_diff_then_cost_then_time():
    attempts = [A("failing", eligible=False, judge_score=10, lines_changed=1),
                A("slow", seconds=9), A("fast", seconds=2), A("pricey", cost_usd=0.5, lines_changed=10),
                A("small", lines_changed=3), A("judged", judge_score=7, lines_changed=50),
                A("unjudged-small", lines_changed=1, judge_score=None)]
    ranked = rank(attempts)
    assert [a.name for a in ranked] == ["judged", "unjudged-small", "small", "fast", "slow", "pricey", "failing"]
    assert [a.place for a in ranked] == [1, 2, 3, 4, 5, 6, 7]
    reasons = {a.name: a.reason for a in ranked}
    assert reasons["judged"] == "judge scored it 7; unjudged-small got no score"
    assert reasons["unjudged-small"] == "smaller diff (1 lines against small's 3)"
    assert reasons["fast"] == "faster (2.0s against slow's 9.0s)"
    assert reasons["slow"] == "cheaper ($0.1000 against pricey's $0.5000)"
    assert reasons["pricey"] == "its check passed and failing's did not"
    assert reasons["failing"] == "its check failed (1 failed)"


def test_ranking_a_lone_attempt_and_a_tie():
    (only,) = rank([A("only")])
    assert only.reason == "the only attempt; its check passed"
    first, second = rank([A("b"), A("a")])
    assert first.name == "a" and first.reason == "tied with b; placed by name"


def test_parse_verdict_accepts_bare_fenced_and_prose_json_and_rejects_the_rest():
    assert parse_verdict('{"score": 8, "reasons": "ok"}').score == 8
    assert parse_verdict('Here:\n```json\n{"score": 6.5, "reasons": ["a", "b"]}\n```').reasons == "a; b"
    assert parse_verdict('I think {"score": 3, "reasons": "meh"} fits').score == 3
    for bad in ("nine out of ten", '{"score": "9"}', '{"score": 11}', '{"score": true}', "[]", ""):
        assert parse_verdict(bad) is None, bad


async def test_judge_bad_json_is_retried_once_then_no_score():
    model = ScriptedModel([reply("great job!"), reply('{"score": 7, "reasons": "fine"}')], name="scripted:j")
    verdict = await judge_diff(model, "spec", "diff --git a/x b/x\n+1\n")
    assert verdict.score == 7 and model.remaining == 0
    assert "not the JSON" in model.calls[1].messages[-1].text()
    twice = ScriptedModel([reply("nope"), reply("still nope")], name="scripted:j")
    verdict = await judge_diff(twice, "spec", "+x")
    assert verdict.score is None and "no score" in verdict.reasons and twice.remaining == 0


async def test_judge_call_failure_and_empty_diff_never_crash():
    verdict = await judge_diff(ScriptedModel([fail(500, "api_error")], name="scripted:j"), "spec", "+x")
    assert verdict.score is None and "judge call failed" in verdict.reasons
    assert (await judge_diff(ScriptedModel([], name="scripted:j"), "spec", "  ")).score == 0
    assert isinstance(fail(), ProviderError)


def test_estimate_prices_attempts_from_the_catalog():
    plans = build_plans(["sonnet", "haiku"], config=RaceConfig())
    per, total = estimate(plans, config=RaceConfig(tokens_per_attempt=1_000_000, output_tokens_per_attempt=0),
                          catalog=Catalog.load())
    assert per == [3.0, 1.0] and total == 4.0
    external = build_plans([], agent="codex", config=RaceConfig())
    assert estimate(external, config=RaceConfig(), catalog=Catalog.load()) == ([None], 0)


def test_report_renders_a_stored_race():
    store = SQLiteStore(":memory:")
    race_id = store.create_run("race", "fix it", meta={"attempts": [
        {"name": "a1", "agent": "implementer", "model": "x:y", "branch": "b"}]})
    console = Console(record=True, width=150)
    console.print(report(store, race_id))
    text = console.export_text()
    assert "a1" in text and "running" in text
    attempt = {"name": "a1", "agent": "implementer", "model": "x:y", "place": 1, "status": "done",
               "check": {"passed": True, "summary": "3 passed"}, "judge_score": 8.0, "judge_reasons": "tidy",
               "added": 2, "removed": 1, "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01,
               "seconds": 3.0, "reason": "the only attempt; its check passed", "fallback_used": ""}
    store.finish_run(race_id, "done", result={"attempts": [attempt], "winner": "a1", "base_branch": "main",
                                              "merged": "abcdef1234567", "winner_diff": "+added line\n",
                                              "notes": []})
    console = Console(record=True, width=150)
    console.print(report(store, race_id))
    text = console.export_text()
    for expected in ("✓ 3 passed", "8/10", "+2 −1", "$0.0100", "winning diff: a1", "+added line",
                     "merged a1 into main at abcdef1234", "judge: tidy"):
        assert expected in text, expected
