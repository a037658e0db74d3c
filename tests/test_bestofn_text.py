"""Text best-of-N (Self-MoA) through ``Session.ask`` and ``flotilla ask``: the official SDK over loopback
to the fake provider; the aggregation prompts and the accounting asserted on what the provider received."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flotilla import Session
from flotilla.errors import UserError
from flotilla.patterns.best_of_n import JUDGE, SYNTHESIZE, parse_pick

FLOTILLA = str(Path(sys.executable).parent / "flotilla")
PRICES = ('[models."fake:writer"]\ninput = 1.0\noutput = 2.0\n'
          '[models."fake:boss"]\ninput = 10.0\noutput = 20.0\n')


def project(tmp_path: Path, fp) -> Path:
    (tmp_path / "flotilla.toml").write_text(f'[providers.fake]\nkind = "anthropic"\nbase_url = "{fp.url}"\n'
                                            + PRICES)
    return tmp_path


def sampler(texts: list[str], aggregate_text: str = "the synthesis"):
    """A fake provider step for every request: samples answer in turn from ``texts`` (100 in, 10 out
    each); an aggregation call (recognised by its system prompt) answers ``aggregate_text`` (500 in, 50 out)."""
    turn, lock = itertools.count(), threading.Lock()

    def step(body: dict) -> dict:
        system = body.get("system") or ""
        system = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
        if system in (SYNTHESIZE, JUDGE):
            return {"text": aggregate_text, "input_tokens": 500, "output_tokens": 50}
        with lock:
            i = next(turn)
        return {"text": texts[i % len(texts)], "input_tokens": 100, "output_tokens": 10}

    return step


def user_text(received) -> str:
    content = received.body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(b["text"] for b in content if b["type"] == "text")


def test_self_moa_samples_then_synthesises_and_sums_the_cost(tmp_path, fake_provider):
    fp = fake_provider({"writer": sampler(["alpha", "beta", "gamma"])})
    s = Session(project(tmp_path, fp), durable=False)
    answer = s.ask_sync("fake:writer", "Name a colour.", samples=3)
    assert answer.text == "the synthesis" and answer.aggregate == "self-moa"
    assert sorted(c.text for c in answer.samples) == ["alpha", "beta", "gamma"]
    calls = fp.received
    assert [c.model for c in calls] == ["writer"] * 4
    samples, (aggregation,) = calls[:3], calls[3:]
    assert all(user_text(c) == "Name a colour." and "system" not in c.body for c in samples)
    assert aggregation.body["system"] == SYNTHESIZE
    prompt = user_text(aggregation)
    assert prompt.startswith("<request>\nName a colour.\n</request>")
    for label, text in ((1, "alpha"), (2, "beta"), (3, "gamma")):
        i = [c.text for c in answer.samples].index(text) + 1
        assert f'<candidate number="{i}">\n{text}\n</candidate>' in prompt
    # fake:writer costs $1 in / $2 out per million: a sample 100*1 + 10*2, the synthesis 500*1 + 50*2
    assert [c.cost_usd for c in answer.samples] == [pytest.approx(120e-6)] * 3
    assert answer.aggregation[0].cost_usd == pytest.approx(600e-6)
    assert answer.cost_usd == pytest.approx(960e-6)
    assert (answer.input_tokens, answer.output_tokens) == (800, 80)
    # the store holds the same: one ask run, a child run per sample and for the aggregation
    family = s.store.family(answer.run_id)
    assert [s.store.get_run(i)["kind"] for i in family] == ["ask", "sample", "sample", "sample", "aggregate"]
    assert s.store.cost(family) == pytest.approx(960e-6)
    assert s.store.get_run(answer.run_id)["result"]["samples"][0]["cost_usd"] == pytest.approx(120e-6)


def test_seq_aggregates_in_a_sliding_window(tmp_path, fake_provider):
    fp = fake_provider({"writer": sampler(["s1", "s2", "s3", "s4", "s5"], "merged")})
    s = Session(project(tmp_path, fp), durable=False)
    answer = s.ask_sync("fake:writer", "Q?", samples=5, aggregate="seq", window=3, parallel=2)
    # window 3: samples 1-3 are synthesised; then that synthesis (candidate 0) with samples 4 and 5
    assert [c.inputs for c in answer.aggregation] == [[1, 2, 3], [0, 4, 5]]
    second = user_text(fp.received[-1])
    assert '<candidate number="0">\nmerged\n</candidate>' in second
    assert second.count("<candidate") == 3
    assert answer.text == "merged" and "2 windows of up to 3" in answer.reason
    assert answer.cost_usd == pytest.approx(5 * 120e-6 + 2 * 600e-6)


def test_judge_picks_one_sample_with_its_reason_on_another_model(tmp_path, fake_provider):
    fp = fake_provider({"writer": sampler(["wrong", "right"]),
                        "boss": [{"text": "not json"},
                                 {"text": 'Here: {"pick": 2, "reason": "it is correct"}', "input_tokens": 1000,
                                  "output_tokens": 100}]})
    s = Session(project(tmp_path, fp), durable=False)
    answer = s.ask_sync("fake:writer", "Q?", samples=2, aggregate="judge", aggregator="fake:boss")
    picked = answer.samples[answer.picked - 1]
    assert answer.text == picked.text == "right"
    assert "picked sample" in answer.reason and "it is correct" in answer.reason
    judge_calls = [c for c in fp.received if c.model == "boss"]
    assert [c.body["system"] for c in judge_calls] == [JUDGE, JUDGE]
    assert "Answer with ONLY" in user_text(judge_calls[1])  # the retry after bad JSON
    assert len(answer.aggregation) == 2
    assert answer.aggregation[1].cost_usd == pytest.approx((1000 * 10 + 100 * 20) / 1e6)


def test_a_failed_sample_is_left_out_and_every_failure_raises(tmp_path, fake_provider):
    fp = fake_provider({"writer": [{"text": "fine", "input_tokens": 100, "output_tokens": 10}]
                        + [{"status": 400, "error_type": "invalid_request_error", "message": "no"}]})
    s = Session(project(tmp_path, fp), durable=False)
    answer = s.ask_sync("fake:writer", "Q?", samples=2, parallel=1)
    assert answer.text == "fine" and "only one sample answered" in answer.reason
    assert [c.error is None for c in answer.samples] == [True, False]
    fp.add("writer", [{"status": 400, "error_type": "invalid_request_error", "message": "no"}] * 2)
    with pytest.raises(Exception, match="every one of the 2 samples failed"):
        s.ask_sync("fake:writer", "Q?", samples=2)


def test_bad_options_are_user_errors(tmp_path, fake_provider):
    fp = fake_provider({"writer": sampler(["x"])})
    s = Session(project(tmp_path, fp), durable=False)
    for kwargs, words in (({"samples": 0}, "--samples"), ({"samples": 2, "aggregate": "best"}, "--aggregate"),
                          ({"samples": 3, "aggregate": "seq", "window": 1}, "--window")):
        with pytest.raises(UserError, match=words):
            s.ask_sync("fake:writer", "Q?", **kwargs)
    assert fp.count() == 0


def test_parse_pick_takes_only_a_listed_number():
    assert parse_pick('{"pick": 3, "reason": "r"}', [1, 3]) == (3, "r")
    assert parse_pick('{"pick": 2}', [1, 3]) is None
    assert parse_pick('{"pick": true}', [1]) is None and parse_pick("two", [1, 2]) is None


def test_the_cli_prints_the_answer_and_each_sample_cost(tmp_path, fake_provider):
    fp = fake_provider({"writer": sampler(["one", "two"])})
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    run = subprocess.run([FLOTILLA, "ask", "fake:writer", "Q?", "--samples", "2"], cwd=project(tmp_path, fp),
                         env={**env, "HOME": str(tmp_path), "COLUMNS": "200"}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "the synthesis\n"
    assert "sample 1" in run.stderr and "$0.000120" in run.stderr and "aggregate" in run.stderr
    assert "total: 3 calls" in run.stderr and "$0.000840" in run.stderr
    as_json = json.loads(subprocess.run([FLOTILLA, "ask", "fake:writer", "Q?", "--samples", "2", "--json"],
                                        cwd=tmp_path, env={**env, "HOME": str(tmp_path)}, capture_output=True,
                                        text=True, timeout=60).stdout)
    assert as_json["text"] == "the synthesis" and len(as_json["samples"]) == 2
    assert as_json["cost_usd"] == pytest.approx(840e-6)
    bad = subprocess.run([FLOTILLA, "ask", "fake:writer", "Q?", "--samples", "2", "--aggregate", "vote"],
                         cwd=tmp_path, env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--aggregate must be one of" in bad.stderr and "Traceback" not in bad.stderr


def test_show_of_a_sampled_ask_lists_every_sample_and_the_reason(tmp_path, fake_provider):
    fp = fake_provider({"writer": sampler(["first answer", "second answer"])})
    s = Session(project(tmp_path, fp), durable=False)
    answer = s.ask_sync("fake:writer", "Q?", samples=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    shown = subprocess.run([FLOTILLA, "show", answer.run_id], cwd=tmp_path, capture_output=True, text=True,
                           env={**env, "HOME": str(tmp_path), "COLUMNS": "200"}, timeout=60)
    assert shown.returncode == 0, shown.stderr
    for words in ("sample 1", "sample 2", "first answer", "second answer", "synthesised samples 1, 2",
                  "the synthesis", "$0.000840"):
        assert words in shown.stdout
    lone = subprocess.run([FLOTILLA, "ask", "fake:writer", "Q?", "--aggregator", "fake:boss"], cwd=tmp_path,
                          env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert lone.returncode == 2 and "add --samples N" in lone.stderr
