"""The JSON serializer DBOS writes through: JSON in, JSON out, errors rebuilt."""

from __future__ import annotations

import json

import pytest

from flotilla.agents.tools.base import ToolOutput
from flotilla.durable._serializer import JsonSerializer
from flotilla.durable.steps import dump_value, load_value
from flotilla.errors import BudgetExceeded, ProviderError, RunError
from flotilla.testing import reply, tool_call

S = JsonSerializer()


def test_json_values_round_trip_as_plain_json() -> None:
    value = {"args": ("a", 1), "kwargs": {"x": [1.5, None, True, {"y": "z"}]}}
    text = S.serialize(value)
    assert json.loads(text) == {"args": ["a", 1], "kwargs": {"x": [1.5, None, True, {"y": "z"}]}}
    assert S.deserialize(text) == json.loads(text)


def test_non_json_values_are_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"\.wire\(\)"):
        S.serialize({"response": reply("hi")})
    with pytest.raises(TypeError, match="non-string key"):
        S.serialize({1: "a"})
    with pytest.raises(TypeError, match="JSON cannot carry"):
        S.serialize(float("nan"))


def test_flotilla_errors_come_back_with_their_class_and_fields() -> None:
    error = S.deserialize(S.serialize(ProviderError("slow down", status=429, kind="rate_limit_error",
                                                    retry_after=2.0, provider="anthropic", model="m")))
    assert type(error) is ProviderError
    assert (error.status, error.retryable, error.retry_after, error.kind) == (429, True, 2.0, "rate_limit_error")
    assert str(error) == "anthropic:m 429 rate_limit_error: slow down"
    budget = S.deserialize(S.serialize(BudgetExceeded(1.5, 1.0)))
    assert isinstance(budget, BudgetExceeded) and budget.cap_usd == 1.0


def test_foreign_errors_come_back_as_run_errors_naming_the_class() -> None:
    import decimal

    error = S.deserialize(S.serialize(decimal.InvalidOperation("bad")))
    assert type(error) is RunError
    assert "decimal.InvalidOperation: bad" in str(error)
    assert type(S.deserialize(S.serialize(ValueError("v")))) is ValueError


def test_step_values_rebuild_messages_and_tool_outputs() -> None:
    response = tool_call("Bash", {"command": "ls"}, text="let me look")
    dumped = dump_value(response)
    assert json.loads(json.dumps(dumped)) == dumped
    assert load_value(json.loads(json.dumps(dumped))) == response
    out = ToolOutput(content="ok", is_error=True, files_changed=["a.py"])
    assert load_value(json.loads(S.serialize(dump_value(out)))) == out
    assert load_value({"plain": 1}) == {"plain": 1}
    with pytest.raises(TypeError, match="only flotilla"):
        load_value({"__flotilla_value__": "os:system", "data": {}})
