"""The agent loop: transcript in the store, permissions enforced, concurrency, each limit, steering."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from flotilla.agents import Limits
from flotilla.agents.limits import LimitsConfig
from flotilla.agents.tools.base import ToolOutput
from flotilla.errors import ConfigError
from flotilla.events import MessageAdded, RunFinished, SteeringReceived, ToolCalled, ToolDenied
from flotilla.messages import MessagesRequest
from flotilla.store import SQLiteStore
from flotilla.testing import FunctionModel, ScriptedModel, fail, reply, tool_call, tool_calls

from test_runtime_support import results_in, run, settings_for, spec, tool_names


async def test_a_run_writes_files_and_lands_in_the_store(tmp_path: Path) -> None:
    model = ScriptedModel([tool_call("Write", {"file_path": "hello.txt", "content": "hi\n"}), reply("wrote it")],
                          name="scripted:exec")
    result, store, sink = await run(spec(), "write hello.txt", tmp_path, {"scripted:exec": model})

    assert (result.stop_reason, result.text, result.turns, result.files_changed) == (
        "end_turn", "wrote it", 2, ["hello.txt"])
    assert (tmp_path / "hello.txt").read_text() == "hi\n"
    assert result.cost_usd > 0 and result.usage.output_tokens > 0
    row = store.get_run(result.run_id)
    assert (row["status"], row["reason"], row["result"]["files_changed"]) == ("done", "end_turn", ["hello.txt"])
    # Every transcript message is in the store, in order: task, tool call, result, answer.
    stored = [e["message"]["role"] for e in store.events(result.run_id, "MessageAdded")]
    assert stored == ["user", "assistant", "user", "assistant"]
    assert [u["role"] for u in store.usage([result.run_id])] == ["executor"]
    model.assert_consumed()


async def test_a_read_only_agent_cannot_write(tmp_path: Path) -> None:
    seen: list[MessagesRequest] = []

    def second(request: MessagesRequest) -> Any:
        seen.append(request)
        return reply("could not write")

    model = ScriptedModel([tool_calls(("Write", {"file_path": "x.txt", "content": "no"}),
                                      ("Bash", {"command": "touch y.txt"})), second], name="scripted:exec")
    explorer = spec("explorer", permission_mode="plan")  # every tool listed, but plan mode: read-only
    result, _, sink = await run(explorer, "try to write", tmp_path, {"scripted:exec": model})

    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "y.txt").exists()
    assert all(r.is_error and "read-only" in r.text() for r in results_in(seen[0]))
    assert [d.tool for d in sink.of(ToolDenied)] == ["Write", "Bash"]
    assert sink.of(ToolCalled) == []
    assert "Write" not in tool_names(model.calls[0]) and "Read" in tool_names(model.calls[0])
    assert result.stop_reason == "end_turn" and len(result.denials) == 2


async def test_a_tool_outside_the_agents_list_is_denied(tmp_path: Path) -> None:
    model = ScriptedModel([tool_call("Bash", {"command": "touch made.txt"}), reply("ok")], name="scripted:exec")
    result, store, _ = await run(spec(tools=["Read", "Edit"]), "run bash", tmp_path, {"scripted:exec": model})

    assert not (tmp_path / "made.txt").exists()
    denial = results_in(model.calls[1])[0]
    assert denial.is_error and "Bash is not allowed for agent 'worker'" in denial.text()
    assert tool_names(model.calls[0]) == ["Read", "Edit"]
    assert [e["tool"] for e in store.events(result.run_id, "ToolDenied")] == ["Bash"]


async def test_an_unknown_tool_and_bad_input_go_back_to_the_model(tmp_path: Path) -> None:
    model = ScriptedModel([tool_calls(("Frobnicate", {}), ("Read", {"nope": 1})), reply("fine")],
                          name="scripted:exec")
    result, _, _ = await run(spec(), "x", tmp_path, {"scripted:exec": model})
    unknown, bad = results_in(model.calls[1])
    assert unknown.is_error and "no tool named 'Frobnicate'" in unknown.text()
    assert bad.is_error and "Invalid input for Read" in bad.text()
    assert result.stop_reason == "end_turn"


class _Meet:
    """A tool that finishes only once ``parties`` calls of it are running at the same time."""

    name, description, read_only = "Meet", "waits for the others", True
    input_schema: dict[str, Any] = {"type": "object"}

    def __init__(self, parties: int) -> None:
        self.barrier = asyncio.Barrier(parties)

    async def call(self, input: dict[str, Any], context: Any) -> ToolOutput:
        await asyncio.wait_for(self.barrier.wait(), 5)
        return ToolOutput("met")


async def test_several_tool_calls_run_concurrently(tmp_path: Path) -> None:
    model = ScriptedModel([tool_calls(("Meet", {}), ("Meet", {}), ("Meet", {})), reply("all met")],
                          name="scripted:exec")
    result, _, _ = await run(spec(tools=["Meet"]), "meet", tmp_path, {"scripted:exec": model},
                             tools={"Meet": _Meet(3)})
    assert [r.text() for r in results_in(model.calls[1])] == ["met", "met", "met"]
    assert result.stop_reason == "end_turn"


# -- limits ------------------------------------------------------------------------


async def test_max_turns_ends_the_run_cleanly(tmp_path: Path) -> None:
    model = ScriptedModel([tool_call("Glob", {"pattern": "*"})] * 2, name="scripted:exec")
    result, store, _ = await run(spec(), "loop", tmp_path, {"scripted:exec": model}, limits=Limits(max_turns=2))
    assert (result.stop_reason, result.turns) == ("max_turns", 2)
    row = store.get_run(result.run_id)
    assert row["status"] == "limited" and row["reason"].startswith("max_turns: 2 model calls made")
    model.assert_consumed()


async def test_max_turns_from_the_agent_file(tmp_path: Path) -> None:
    model = ScriptedModel([tool_call("Glob", {"pattern": "*"})], name="scripted:exec")
    result, _, _ = await run(spec(max_turns=1), "loop", tmp_path, {"scripted:exec": model})
    assert (result.stop_reason, result.turns) == ("max_turns", 1)


def _forever(name: str = "scripted:exec") -> Any:
    """A model that never ends its turn: every answer asks for one more tool call."""
    return FunctionModel(lambda request: tool_call("Glob", {"pattern": "*"}), name=name)


async def test_a_run_given_no_limits_stops_at_the_default_max_turns(tmp_path: Path) -> None:
    result, store, _ = await run(spec(), "loop", tmp_path, {"scripted:exec": _forever()})
    assert (result.stop_reason, result.turns) == ("max_turns", LimitsConfig().max_turns)
    assert store.get_run(result.run_id)["status"] == "limited" and "[limits]" in (result.error or "")


async def test_the_limits_table_sets_the_defaults_and_limits_override_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, limits={"max_turns": 4, "wall_clock_s": 60})
    result, _, _ = await run(spec(), "loop", tmp_path, {"scripted:exec": _forever()}, settings=settings)
    assert (result.stop_reason, result.turns) == ("max_turns", 4)
    result, _, _ = await run(spec(max_turns=3), "loop", tmp_path, {"scripted:exec": _forever()}, settings=settings)
    assert result.turns == 3  # the agent file's maxTurns beats [limits]
    result, _, _ = await run(spec(max_turns=3), "loop", tmp_path, {"scripted:exec": _forever()}, settings=settings,
                             limits=Limits(max_turns=2))
    assert result.turns == 2  # and Limits (--max-turns) beats both

    sleepy = ScriptedModel([tool_call("Bash", {"command": "sleep 30"})], name="scripted:exec")
    clocked = settings_for(tmp_path, limits={"wall_clock_s": 0.5})
    result, _, _ = await run(spec(), "sleep", tmp_path, {"scripted:exec": sleepy}, settings=clocked)
    assert result.stop_reason == "timeout" and "wall clock of 0.5s" in (result.error or "")


async def test_zero_turns_off_a_default_bound(tmp_path: Path) -> None:
    steps = [tool_call("Glob", {"pattern": "*"})] * 5 + [reply("done")]
    model = ScriptedModel(steps, name="scripted:exec")
    settings = settings_for(tmp_path, limits={"max_turns": 0})
    result, _, _ = await run(spec(), "loop", tmp_path, {"scripted:exec": model}, settings=settings,
                             limits=Limits(wall_clock_s=0))
    assert (result.stop_reason, result.turns) == ("end_turn", 6)


@pytest.mark.parametrize("table, key", [({"max_turns": -1}, "limits.max_turns"),
                                        ({"max_turn": 5}, "limits.max_turn")])
async def test_a_bad_limits_table_names_the_key(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    model = _forever()
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        await run(spec(), "x", tmp_path, {"scripted:exec": model}, settings=settings_for(tmp_path, limits=table))
    assert model.calls == []


async def test_the_budget_ends_the_run_before_the_call_that_would_cross_it(tmp_path: Path) -> None:
    pricey = settings_for(tmp_path, models={"scripted:exec": {"input": 200.0, "output": 200.0}})
    model = ScriptedModel([tool_call("Glob", {"pattern": "*"}), reply("never")], name="scripted:exec")
    result, store, _ = await run(spec(), "spend", tmp_path, {"scripted:exec": model}, settings=pricey,
                                 limits=Limits(budget_usd=0.5))
    assert result.stop_reason == "budget" and result.turns == 1 and model.remaining == 1
    row = store.get_run(result.run_id)
    assert row["status"] == "limited" and row["reason"].startswith("budget: budget exceeded")


async def test_the_wall_clock_ends_the_run_and_answers_the_cut_off_call(tmp_path: Path) -> None:
    model = ScriptedModel([tool_call("Bash", {"command": "sleep 30"})], name="scripted:exec")
    result, store, _ = await run(spec(), "sleep", tmp_path, {"scripted:exec": model},
                                 limits=Limits(wall_clock_s=0.5))
    assert result.stop_reason == "timeout"
    assert store.get_run(result.run_id)["reason"].startswith("timeout: wall clock of 0.5s reached (--timeout")
    last = store.events(result.run_id, "MessageAdded")[-1]["message"]
    assert last["content"][0]["type"] == "tool_result" and "Not run: the run ended (timeout)" in \
        last["content"][0]["content"]


async def test_cancelling_the_task_records_the_run_as_cancelled(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    model = ScriptedModel([tool_call("Bash", {"command": "sleep 30"})], name="scripted:exec")
    task = asyncio.create_task(run(spec(), "sleep", tmp_path, {"scripted:exec": model}, store=store,
                                   run_id="ctrlc"))
    while not store.events("ctrlc", "MessageAdded")[1:]:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    try:
        await task
        raise AssertionError("the cancellation was swallowed")
    except asyncio.CancelledError:
        pass
    row = store.get_run("ctrlc")
    assert (row["status"], row["reason"]) == ("cancelled", "cancelled: the run's task was cancelled (Ctrl-C)")


async def test_a_provider_error_ends_the_run_with_the_error_recorded(tmp_path: Path) -> None:
    model = ScriptedModel([fail(400, "invalid_request_error", "bad tools")], name="scripted:exec")
    result, store, sink = await run(spec(), "x", tmp_path, {"scripted:exec": model})
    assert result.stop_reason == "error" and "bad tools" in (result.error or "")
    assert store.get_run(result.run_id)["status"] == "failed"
    assert sink.of(RunFinished)[-1].status == "failed"


# -- steering ------------------------------------------------------------------------


def _send_from_another_process(db: Path, run_id: str, message: str = "", *, read_only: bool = False,
                               stop: bool = False) -> None:
    code = ("import sys; from flotilla.store import SQLiteStore; "
            "SQLiteStore(sys.argv[1]).send_steering(sys.argv[2], sys.argv[3], read_only=sys.argv[4] == '1', "
            "stop=sys.argv[5] == '1')")
    subprocess.run([sys.executable, "-c", code, str(db), run_id, message, "1" if read_only else "0",
                    "1" if stop else "0"], check=True)


async def test_a_steering_message_from_another_process_arrives_before_the_next_call(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    # The tool call is a real process writing to the run's inbox while the run is going.
    steer = [sys.executable, "-c", "import sys; from flotilla.store import SQLiteStore; "
             f"SQLiteStore({str(db)!r}).send_steering('steered', 'use tabs, not spaces')"]
    model = ScriptedModel([tool_call("Bash", {"command": shlex.join(steer)}), reply("ok")],
                          name="scripted:exec")
    result, store, sink = await run(spec(), "format", tmp_path, {"scripted:exec": model}, run_id="steered")

    last = model.calls[1].messages[-1]
    assert last.role == "system" and "use tabs, not spaces" in last.text()  # scripted kind takes system
    assert [s.message for s in sink.of(SteeringReceived)] == ["use tabs, not spaces"]
    assert store.events("steered", "MessageAdded")[3]["message"]["role"] == "system"
    assert result.stop_reason == "end_turn"


async def test_steering_for_an_anthropic_provider_is_a_marked_user_message(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, providers={"fakeanth": {"kind": "anthropic", "base_url": "http://x"}})
    store = SQLiteStore(tmp_path / "store.db")
    store.send_steering("steered", "stop refactoring; fix only the bug")
    model = ScriptedModel([reply("ok")], name="fakeanth:m")
    await run(spec(), "fix", tmp_path, {"fakeanth:m": model}, store=store, settings=settings,
              model="fakeanth:m", run_id="steered")
    messages = model.calls[0].messages
    assert [m.role for m in messages] == ["user", "user"]
    assert messages[1].text().startswith("[Steering message from the person running this agent")


async def test_read_only_steering_switches_tools_from_the_next_call(tmp_path: Path) -> None:
    db = tmp_path / "store.db"

    def steer_then_ask(request: MessagesRequest) -> Any:
        _send_from_another_process(db, "ro", read_only=True)
        return tool_call("Glob", {"pattern": "*"})

    model = ScriptedModel([steer_then_ask, tool_call("Write", {"file_path": "late.txt", "content": "x"}),
                           reply("done")], name="scripted:exec")
    result, _, sink = await run(spec(), "work", tmp_path, {"scripted:exec": model}, run_id="ro")

    assert "Write" in tool_names(model.calls[0]) and "Write" not in tool_names(model.calls[1])
    assert not (tmp_path / "late.txt").exists()
    assert [d.tool for d in sink.of(ToolDenied)] == ["Write"]
    assert sink.of(SteeringReceived)[0].read_only


async def test_stop_from_the_inbox_ends_the_run_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "store.db"

    def stop_then_continue(request: MessagesRequest) -> Any:
        _send_from_another_process(db, "halt", stop=True)
        return tool_call("Glob", {"pattern": "*"})

    model = ScriptedModel([stop_then_continue], name="scripted:exec")
    result, store, sink = await run(spec(), "work", tmp_path, {"scripted:exec": model}, run_id="halt")
    assert result.stop_reason == "stopped"
    assert (store.get_run("halt")["status"], store.get_run("halt")["reason"]) == ("cancelled", "stopped")
    # The Glob asked for before the stop still ran and was answered: nothing half-written.
    assert len(sink.of(ToolCalled)) == 1 and len(sink.of(MessageAdded)) == 3


async def test_steering_sent_from_a_thread_mid_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    sent = threading.Event()

    def steer_from_thread(request: MessagesRequest) -> Any:
        threading.Thread(target=lambda: (store.send_steering("th", "also update the docs"), sent.set())).start()
        assert sent.wait(5)
        return tool_call("Glob", {"pattern": "*"})

    model = ScriptedModel([steer_from_thread, reply("ok")], name="scripted:exec")
    await run(spec(), "work", tmp_path, {"scripted:exec": model}, store=store, run_id="th")
    assert "also update the docs" in model.calls[1].messages[-1].text()


async def test_every_model_and_tool_call_goes_through_the_seam(tmp_path: Path) -> None:
    from flotilla.agents.seam import InMemorySteps as Steps

    class Recording(Steps):
        def __init__(self) -> None:
            super().__init__()
            self.keys: list[str] = []

        async def step(self, key: str, fn: Any) -> Any:
            self.keys.append(key)
            return await super().step(key, fn)

    steps = Recording()
    first = tool_calls(("Glob", {"pattern": "*"}), ("Read", {"file_path": "f.txt"}))
    (tmp_path / "f.txt").write_text("x")
    model = ScriptedModel([first, reply("ok")], name="scripted:exec")
    await run(spec(), "x", tmp_path, {"scripted:exec": model}, steps=steps)
    ids = [b.id for b in first.tool_uses()]
    assert steps.keys == ["steering:0", "model:turn:1", f"tool:{ids[0]}", f"tool:{ids[1]}",
                          "steering:1", "model:turn:2"]


async def test_steering_takes_the_form_every_model_of_the_fallback_chain_accepts(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, providers={"fakeanth": {"kind": "anthropic", "base_url": "http://x"}})
    store = SQLiteStore(tmp_path / "store.db")
    store.send_steering("chain", "keep it short")
    model = ScriptedModel([reply("ok")], name="scripted:exec")
    await run(spec(), "x", tmp_path, {"scripted:exec": model, "fakeanth:m": ScriptedModel([], name="fakeanth:m")},
              store=store, settings=settings, fallback=["fakeanth:m"], run_id="chain")
    assert [m.role for m in model.calls[0].messages] == ["user", "user"]
