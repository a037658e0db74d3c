"""Subagents: a fresh context, only the result comes back, depth and concurrency limits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from flotilla.agents import Limits
from flotilla.errors import Cancelled
from flotilla.messages import MessagesRequest
from flotilla.testing import FunctionModel, ScriptedModel, reply, tool_call, tool_calls

from test_runtime_support import results_in, run, spec


def _agent_call(prompt: str, agent: str = "child") -> Any:
    return tool_call("Agent", {"description": "a slice", "prompt": prompt, "subagent_type": agent})


async def test_the_parent_gets_the_result_never_the_transcript(tmp_path: Path) -> None:
    big = "SECRET-LINE and some padding to make it longer\n" * 1500  # about 70 KB the subagent reads, and the parent must never see
    (tmp_path / "big.txt").write_text(big)
    child_model = ScriptedModel([
        tool_call("Read", {"file_path": "big.txt"}),
        tool_call("Write", {"file_path": "out.txt", "content": "result\n"}),
        reply("Summary: big.txt repeats one line; wrote out.txt."),
    ], name="scripted:child")
    parent_model = ScriptedModel([_agent_call("summarise big.txt into out.txt"), reply("done")],
                                 name="scripted:exec")
    agents = {"child": spec("child", model="scripted:child", system_prompt="You are the child.")}
    result, store, _ = await run(spec("lead"), "delegate", tmp_path,
                                 {"scripted:exec": parent_model, "scripted:child": child_model}, agents=agents)

    # Fresh context: the child saw only its own system prompt and the prompt it was given.
    first = child_model.calls[0]
    assert first.system_text().startswith("You are the child.")
    assert [(m.role, m.text()) for m in first.messages] == [("user", "summarise big.txt into out.txt")]
    # Isolation, measured on the parent's next request: it grew by the tool result only.
    before, after = parent_model.calls
    grown = len(after.model_dump_json()) - len(before.model_dump_json())
    child_transcript = sum(len(m.model_dump_json()) for m in child_model.calls[-1].messages)
    answer = results_in(after)[0].text()
    assert "SECRET-LINE" not in after.model_dump_json()
    assert child_transcript > 40_000 and grown < 1_500
    assert answer.startswith("Summary: big.txt repeats one line; wrote out.txt.")
    assert "files changed: out.txt" in answer and "cost $" in answer
    # What the child did counts for the parent: files and cost; its run is a child run in the store.
    assert result.files_changed == ["out.txt"]
    child_run = store.list_runs(parent_id=result.run_id)[0]
    child_cost = sum(u["cost_usd"] for u in store.usage([child_run["id"]]))
    own_cost = sum(u["cost_usd"] for u in store.usage([result.run_id]))
    assert child_cost > 0 and abs(result.cost_usd - (own_cost + child_cost)) < 1e-9
    assert child_run["status"] == "done"


async def test_the_depth_limit_refuses_a_subagent_too_deep(tmp_path: Path) -> None:
    grandchild_attempt = ScriptedModel([_agent_call("go deeper", "child"), reply("I did it myself")],
                                       name="scripted:child")
    parent_model = ScriptedModel([_agent_call("go"), reply("done")], name="scripted:exec")
    agents = {"child": spec("child", model="scripted:child")}
    result, _, _ = await run(spec("lead"), "nest", tmp_path,
                             {"scripted:exec": parent_model, "scripted:child": grandchild_attempt},
                             agents=agents, limits=Limits(max_depth=1))
    refusal = results_in(grandchild_attempt.calls[1])[0]
    assert refusal.is_error and "depth limit is 1" in refusal.text()
    assert result.stop_reason == "end_turn"
    grandchild_attempt.assert_consumed()


async def test_subagents_run_at_most_max_parallel_at_once(tmp_path: Path) -> None:
    running = peak = 0

    async def child(request: MessagesRequest) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return reply("slice done")

    parent_model = ScriptedModel([tool_calls(*[("Agent", {"prompt": f"slice {i}", "subagent_type": "child"})
                                               for i in range(4)]), reply("all done")], name="scripted:exec")
    agents = {"child": spec("child", model="scripted:child")}
    models = {"scripted:exec": parent_model, "scripted:child": FunctionModel(child, name="scripted:child")}
    await run(spec("lead"), "fan out", tmp_path, models, agents=agents,
              limits=Limits(max_parallel_subagents=2))
    assert peak == 2
    assert [r.text().split("\n")[0] for r in results_in(parent_model.calls[1])] == ["slice done"] * 4


async def test_a_read_only_parent_cannot_write_through_a_subagent(tmp_path: Path) -> None:
    child_model = ScriptedModel([tool_call("Write", {"file_path": "sneaky.txt", "content": "x"}), reply("tried")],
                                name="scripted:child")
    parent_model = ScriptedModel([_agent_call("write sneaky.txt"), reply("done")], name="scripted:exec")
    agents = {"child": spec("child", model="scripted:child")}
    await run(spec("lead", tools=["Read", "Agent"]), "x", tmp_path,
              {"scripted:exec": parent_model, "scripted:child": child_model}, agents=agents, read_only=True)
    assert not (tmp_path / "sneaky.txt").exists()
    assert "read-only" in results_in(child_model.calls[1])[0].text()


async def test_inherit_takes_the_subagent_model_setting_else_the_parents(tmp_path: Path) -> None:
    from test_runtime_support import settings_for

    for settings, expected in ((settings_for(tmp_path), "scripted:exec"),
                               (settings_for(tmp_path, subagent_model="scripted:cheap"), "scripted:cheap")):
        models = {"scripted:exec": ScriptedModel([_agent_call("hi"), reply("done")], name="scripted:exec"),
                  "scripted:cheap": ScriptedModel([reply("cheap child")], name="scripted:cheap")}
        if expected == "scripted:exec":
            models["scripted:exec"].steps.insert(1, reply("parent-model child"))
        agents = {"child": spec("child", model="inherit")}
        result, store, _ = await run(spec("lead"), "x", tmp_path, models, agents=agents, settings=settings)
        child_run = store.list_runs(parent_id=result.run_id)[0]
        assert child_run["meta"]["model"] == expected


async def test_a_subagent_that_cannot_start_is_a_tool_error_not_a_crash(tmp_path: Path) -> None:
    parent_model = ScriptedModel([_agent_call("hi"), reply("handled")], name="scripted:exec")
    agents = {"child": spec("child", model="nowhere:model")}
    result, _, _ = await run(spec("lead"), "x", tmp_path, {"scripted:exec": parent_model}, agents=agents)
    failure = results_in(parent_model.calls[1])[0]
    assert failure.is_error and "nowhere:model" in failure.text()
    assert result.stop_reason == "end_turn"


async def test_subagents_share_the_budget(tmp_path: Path) -> None:
    from test_runtime_support import settings_for

    pricey = settings_for(tmp_path, models={"scripted:child": {"input": 100.0, "output": 100.0}})
    parent_model = ScriptedModel([tool_calls(*[("Agent", {"prompt": f"job {i}", "subagent_type": "child"})
                                               for i in range(2)]), reply("both stopped")], name="scripted:exec")

    def busy(request: MessagesRequest) -> Any:
        return tool_call("Glob", {"pattern": "*"})  # never ends by itself: only the budget stops it

    agents = {"child": spec("child", model="scripted:child")}
    models = {"scripted:exec": parent_model, "scripted:child": FunctionModel(busy, name="scripted:child")}
    result, store, _ = await run(spec("lead"), "x", tmp_path, models, agents=agents, settings=pricey,
                                 limits=Limits(budget_usd=1.0))
    children = store.list_runs(parent_id=result.run_id)
    assert [r["status"] for r in children] == ["limited", "limited"]
    assert "stopped (budget)" in results_in(parent_model.calls[1])[0].text()
    spent = sum(u["cost_usd"] for u in store.usage([result.run_id] + [r["id"] for r in children]))
    # Calls that would cross the shared cap are refused before they start.
    assert 0.5 < spent <= 1.0 and abs(result.cost_usd - spent) < 1e-9


async def test_a_subagent_that_never_ends_its_turn_stops_at_the_default_limit(tmp_path: Path) -> None:
    from test_runtime_support import settings_for

    parent_model = ScriptedModel([tool_calls(("Agent", {"prompt": "a", "subagent_type": "looper"}),
                                             ("Agent", {"prompt": "b", "subagent_type": "capped"})),
                                  reply("moved on")], name="scripted:exec")
    forever = FunctionModel(lambda request: tool_call("Glob", {"pattern": "*"}), name="scripted:child")
    agents = {"looper": spec("looper", model="scripted:child"),
              "capped": spec("capped", model="scripted:child", max_turns=2)}
    settings = settings_for(tmp_path, limits={"max_turns": 3})
    result, store, _ = await run(spec("lead"), "x", tmp_path, {"scripted:exec": parent_model, "scripted:child": forever},
                                 agents=agents, settings=settings)
    assert (result.stop_reason, result.text) == ("end_turn", "moved on")
    children = {r["title"].split(":")[0]: r for r in store.list_runs(parent_id=result.run_id)}
    assert {n: (r["status"], r["reason"].split(" model calls")[0]) for n, r in children.items()} == {
        "looper": ("limited", "max_turns: 3"), "capped": ("limited", "max_turns: 2")}
    assert results_in(parent_model.calls[1])[0].text().count("stopped (max_turns)") == 1
    assert len(forever.calls) == 5


class _Halt:
    """A tool that ends the run (as a budget refusal or ``Cancelled`` would) while others are running."""

    name, description, read_only = "Halt", "ends the run", True
    input_schema: dict[str, Any] = {"type": "object"}

    async def call(self, input: dict[str, Any], context: Any) -> Any:
        await asyncio.sleep(0.1)
        raise Cancelled("stopped by the operator")


async def test_a_tool_that_ends_the_run_cancels_its_siblings(tmp_path: Path) -> None:
    from flotilla.agents.tools import Bash

    model = ScriptedModel([tool_calls(("Halt", {}), ("Bash", {"command": "sleep 0.5 && touch late.txt"}))],
                          name="scripted:exec")
    result, store, _ = await asyncio.wait_for(run(
        spec(tools=["Halt", "Bash"]), "x", tmp_path, {"scripted:exec": model},
        tools={"Halt": _Halt(), "Bash": Bash()}), 10)
    assert (result.stop_reason, result.error) == ("cancelled", "stopped by the operator")
    assert store.get_run(result.run_id)["status"] == "cancelled"
    await asyncio.sleep(1.0)  # the Bash beside it was killed, not left running
    assert not (tmp_path / "late.txt").exists()
