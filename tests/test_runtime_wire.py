"""The loop over real adapters: the official SDKs talking to the fake provider on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.agents import run_agent
from flotilla.store import SQLiteStore

from test_runtime_support import settings_for, spec


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_a_run_with_a_tool_call_and_steering_over_the_wire(tmp_path: Path, fake_provider, kind: str) -> None:
    fp = fake_provider({"m": [{"tool_uses": [{"name": "Write", "input": {"file_path": "w.txt", "content": "ok\n"}}]},
                              {"text": "written"}]})
    base = fp.url if kind == "anthropic" else fp.url + "/v1"
    settings = settings_for(tmp_path, providers={"fake": {"kind": kind, "base_url": base}})
    store = SQLiteStore(tmp_path / "store.db")
    store.send_steering("wire", "keep it small")
    result = await run_agent(spec(), "write w.txt", tmp_path, model="fake:m", store=store, settings=settings,
                             run_id="wire")

    assert (result.stop_reason, result.text, result.files_changed) == ("end_turn", "written", ["w.txt"])
    assert (tmp_path / "w.txt").read_text() == "ok\n"
    first, second = (r.body for r in fp.received)
    if kind == "anthropic":
        # The Messages API takes no system role in messages: steering is a marked user message.
        assert [m["role"] for m in first["messages"]] == ["user", "user"]
        assert second["messages"][3]["content"][0]["type"] == "tool_result"
    else:
        assert [m["role"] for m in first["messages"]] == ["system", "user", "system"]
        assert [m["role"] for m in second["messages"]][-2:] == ["assistant", "tool"]
    assert "keep it small" in str(first["messages"])
    assert [u["role"] for u in store.usage(["wire"])] == ["executor"]


async def test_a_fallback_lasts_the_turn_and_the_next_turn_tries_the_primary(tmp_path: Path, fake_provider) -> None:
    fp = fake_provider({
        "primary": [{"status": 529, "error_type": "overloaded_error"}, {"text": "the primary again"}],
        "backup": [{"tool_uses": [{"name": "Write", "input": {"file_path": "b.txt", "content": "b\n"}}]}],
    })
    settings = settings_for(tmp_path, providers={"fake": {"kind": "anthropic", "base_url": fp.url}})
    result = await run_agent(spec(), "write b.txt", tmp_path, model="fake:primary", fallback=["fake:backup"],
                             store=SQLiteStore(tmp_path / "store.db"), settings=settings)

    assert (result.stop_reason, result.text, result.turns) == ("end_turn", "the primary again", 2)
    assert [r.model for r in fp.received] == ["primary", "backup", "primary"]
