"""The submit tool: a structured answer the runtime validates, returned to the model until it is valid."""

from __future__ import annotations

from pathlib import Path

from flotilla.agents.submit import Submission
from flotilla.testing import ScriptedModel, reply, tool_call

from test_runtime_support import results_in, run, spec

ANSWER = Submission(name="submit_answer", description="Give the answer.",
                    input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
                    validate=lambda i: [] if isinstance(i.get("n"), int) and i["n"] > 0 else
                    ["`n` must be a positive integer"], max_attempts=3)


async def test_invalid_input_goes_back_with_the_errors_and_the_valid_one_ends_the_run(tmp_path: Path) -> None:
    seen = []
    model = ScriptedModel([tool_call("submit_answer", {"n": -1}),
                           lambda r: seen.append(r) or tool_call("submit_answer", {"n": 3}),
                           reply("never asked")], name="scripted:exec")
    result, store, _ = await run(spec(tools=["Read"]), "answer", tmp_path, {"scripted:exec": model},
                                 submit=ANSWER)
    assert (result.stop_reason, result.submitted, result.turns) == ("end_turn", {"n": 3}, 2)
    back = results_in(seen[0])[0]
    assert back.is_error and "`n` must be a positive integer" in str(back.content)
    assert "submit_answer" in [t.name for t in seen[0].tools]  # offered beside the agent's own tools
    assert store.get_run(result.run_id)["result"]["submitted"] == {"n": 3}
    assert model.remaining == 1


async def test_the_tries_are_bounded_and_ending_the_turn_without_it_counts(tmp_path: Path) -> None:
    model = ScriptedModel([reply("the answer is 3"), tool_call("submit_answer", {"n": "3"}),
                           tool_call("submit_answer", {}), reply("never asked")], name="scripted:exec")
    result, store, _ = await run(spec(tools=["Read"]), "answer", tmp_path, {"scripted:exec": model},
                                 submit=ANSWER)
    assert result.stop_reason == "error" and result.submitted is None
    assert "no valid submit_answer after 3 tries" in result.error and "`n` must be" in result.error
    assert store.get_run(result.run_id)["status"] == "failed" and model.remaining == 1
    reminder = [e["message"] for e in store.events(result.run_id, "MessageAdded")][2]
    assert "without calling submit_answer" in str(reminder["content"])
