"""The advisor: each automatic trigger, the tool, the cap, and its usage kept apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotilla.agents.advisor import INSTRUCTION
from flotilla.events import AdvisorConsulted
from flotilla.messages import MessagesRequest
from flotilla.testing import FunctionModel, ScriptedModel, reply, tool_call

from test_runtime_support import results_in, run, settings_for, spec


def _advisor(answers: list[str]) -> FunctionModel:
    queue = list(answers)

    def answer(request: MessagesRequest) -> Any:
        return reply(queue.pop(0))

    return FunctionModel(answer, name="scripted:advisor")


async def test_before_the_first_change_and_before_done(tmp_path: Path) -> None:
    advisor = _advisor(["Write it in one go.", "You did not run the tests."])
    model = ScriptedModel([
        tool_call("Glob", {"pattern": "*"}),  # reading: no consult
        tool_call("Write", {"file_path": "a.py", "content": "x = 1\n"}),
        tool_call("Write", {"file_path": "b.py", "content": "y = 2\n"}),  # second change: no consult
        reply("done"),
        reply("tests pass; done"),  # after the before-done advice; no second before-done consult
    ], name="scripted:exec")
    result, store, sink = await run(spec(), "make a.py", tmp_path,
                                    {"scripted:exec": model, "scripted:advisor": advisor},
                                    advisor="scripted:advisor")

    assert [(e.trigger, e.advice) for e in sink.of(AdvisorConsulted)] == [
        ("first_change", "Write it in one go."), ("before_done", "You did not run the tests.")]
    # The first consult happened before the write ran, and saw the planned call.
    first_ask = advisor.calls[0].messages[0].text()
    assert "Write" in first_ask and "a.py" in first_ask and "make a.py" in first_ask
    assert "[Advisor, before your first change]\nWrite it in one go." in model.calls[2].messages[-1].text()
    assert model.calls[4].messages[-1].text().startswith("[Advisor, before you finish]\nYou did not run the tests.")
    assert (result.text, result.stop_reason) == ("tests pass; done", "end_turn")
    roles = {u["role"]: u for u in store.usage([result.run_id])}
    assert set(roles) == {"executor", "advisor"} and roles["advisor"]["calls"] == 2
    model.assert_consumed()


async def test_the_advisor_request_has_the_instruction_no_tools_and_a_token_cap(tmp_path: Path) -> None:
    advisor = _advisor(["fine"])
    model = ScriptedModel([reply("done"), reply("done")], name="scripted:exec")
    await run(spec(), "task", tmp_path, {"scripted:exec": model, "scripted:advisor": advisor},
              advisor="scripted:advisor", settings=settings_for(tmp_path, advisor={"max_tokens": 300}))
    request = advisor.calls[0]
    assert request.system == INSTRUCTION and request.tools is None and request.max_tokens == 300


async def test_the_same_failure_twice_brings_the_advisor(tmp_path: Path) -> None:
    advisor = _advisor(["go ahead", "The script reads a missing env var; set FOO.", "done indeed"])
    failing = {"command": "echo boom >&2; exit 3"}
    model = ScriptedModel([tool_call("Bash", failing), tool_call("Bash", failing), reply("fixed"), reply("fixed")],
                          name="scripted:exec")
    _, _, sink = await run(spec(tools=["Bash"]), "run it", tmp_path,
                           {"scripted:exec": model, "scripted:advisor": advisor}, advisor="scripted:advisor")
    # Bash may change files, so the first call brings the first-change consult; the repeat brings its own.
    assert [e.trigger for e in sink.of(AdvisorConsulted)] == ["first_change", "repeated_error", "before_done"]
    assert "[Advisor, on a repeated failure]" not in model.calls[1].messages[-1].text()
    assert "[Advisor, on a repeated failure]\nThe script reads a missing env var; set FOO." in \
        model.calls[2].messages[-1].text()
    assert "exit 3" in advisor.calls[1].messages[0].text()


async def test_the_executor_can_ask_and_the_cap_holds(tmp_path: Path) -> None:
    advisor = _advisor(["Use a dict, not a list."])
    model = ScriptedModel([
        tool_call("advisor", {"question": "dict or list?"}),
        tool_call("advisor", {"question": "and now?"}),
        reply("done"),
    ], name="scripted:exec")
    _, _, sink = await run(spec(), "t", tmp_path, {"scripted:exec": model, "scripted:advisor": advisor},
                           advisor="scripted:advisor", settings=settings_for(tmp_path, advisor={"max_calls": 1}))
    assert "advisor" in [t.name for t in model.calls[0].tools or []]
    assert results_in(model.calls[1])[0].text() == "Use a dict, not a list."
    assert "not available" in results_in(model.calls[2])[0].text()
    assert [e.trigger for e in sink.of(AdvisorConsulted)] == ["tool"]
    assert "dict or list?" in advisor.calls[0].messages[0].text()
    model.assert_consumed()  # the cap also stopped the before-done consult


async def test_advisor_from_the_agent_file(tmp_path: Path) -> None:
    advisor = _advisor(["looks complete"])
    model = ScriptedModel([reply("done"), reply("done")], name="scripted:exec")
    _, store, _ = await run(spec(advisor="scripted:advisor"), "t", tmp_path,
                            {"scripted:exec": model, "scripted:advisor": advisor})
    assert len(advisor.calls) == 1
