"""Budgets under 200 concurrent requests, streams left early, unpriced models: against a loopback upstream."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import anthropic
import httpx
import pytest

from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import gateway

OAI = 'default = "fakeoai:gpt-test"\n'
ANTH = 'default = "fakeanth:claude-up"\n'
PRICES = ('[models."fakeoai:gpt-test"]\ninput = 5.0\noutput = 25.0\n\n'
          '[models."fakeanth:claude-up"]\ninput = 5.0\noutput = 25.0\n')
PROMPT = [{"role": "user", "content": "word " * 280}]  # 1400 characters


async def _storm(gw, secret: str, n: int, max_tokens: int) -> list[str]:
    client = gw.async_client(secret)

    async def one() -> str:
        try:
            await client.messages.create(model="m", max_tokens=max_tokens, messages=PROMPT)
            return "ok"
        except anthropic.RateLimitError as exc:
            assert "erin" in exc.message and "$0.07" in exc.message
            return "spent" if "is spent" in exc.message else "held"

    try:
        return await asyncio.gather(*(one() for _ in range(n)))
    finally:
        await client.close()


async def test_200_concurrent_requests_end_at_most_one_call_over_the_budget(tmp_path) -> None:
    # The upstream bills 1300 input tokens for 1400 characters (well over a characters/4 guess):
    # 1300 × $5/M + 10 × $25/M = $0.00675 a call, so $0.07 is about ten calls.
    step = {"text": "ok", "input_tokens": 1300, "output_tokens": 10, "delay": 0.05}
    cost = (1300 * 5 + 10 * 25) / 1e6
    with FakeProvider({"gpt-test": step}) as fp, \
            gateway(tmp_path, fp.url, OAI, extra=PRICES, keys={"erin": {"budget_usd": 0.07}}) as gw:
        secret = gw.secrets["erin"]
        results = await _storm(gw, secret, 200, max_tokens=10)
        spent, reserved = gw.app.keys.spent(gw.app.keys.verify(secret))
        assert reserved == pytest.approx(0, abs=1e-12)  # every reservation settled or released
        assert spent == pytest.approx(results.count("ok") * cost)
        assert spent <= 0.07 + cost + 1e-9  # at most one call over
        assert results.count("ok") >= 9 and fp.count() == results.count("ok")
        for _ in range(3):  # what is left is spent one call at a time, then refused as spent
            await _storm(gw, secret, 5, max_tokens=10)
        spent, reserved = gw.app.keys.spent(gw.app.keys.verify(secret))
        assert 0.07 <= spent <= 0.07 + cost + 1e-9
        assert await _storm(gw, secret, 3, max_tokens=10) == ["spent"] * 3


async def test_a_large_max_tokens_is_held_not_called_spent(tmp_path) -> None:
    step = {"text": "ok", "input_tokens": 300, "output_tokens": 10, "delay": 0.2}
    with FakeProvider({"gpt-test": step}) as fp, \
            gateway(tmp_path, fp.url, OAI, extra=PRICES, keys={"erin": {"budget_usd": 0.07}}) as gw:
        secret = gw.secrets["erin"]
        results = await _storm(gw, secret, 50, max_tokens=1024)  # each reserves ≈ $0.033
        assert "spent" not in results  # refused while others were in flight, and told so
        assert 1 <= results.count("ok") <= 3 and results.count("held") == 50 - results.count("ok")
        assert fp.count() == results.count("ok")
        spent, reserved = gw.app.keys.spent(gw.app.keys.verify(secret))
        assert spent < 0.07 and reserved == pytest.approx(0, abs=1e-12)
        again = await _storm(gw, secret, 1, max_tokens=1024)  # nothing in flight now: served
        assert again == ["ok"]


@pytest.mark.parametrize("backend", [OAI, ANTH])
def test_a_stream_the_client_leaves_is_charged_for_what_was_relayed(tmp_path, backend) -> None:
    words = "".join(f"w{i:02d} " for i in range(30))
    step = {"text": words, "pieces": 30, "event_delay": 0.03, "input_tokens": 400, "output_tokens": 30}
    upstream = "gpt-test" if backend == OAI else "claude-up"
    with FakeProvider({upstream: step}) as fp, \
            gateway(tmp_path, fp.url, backend, extra=PRICES, keys={"fay": {"budget_usd": 1.0}}) as gw:
        secret = gw.secrets["fay"]
        body = {"model": "m", "max_tokens": 100, "stream": True, "messages": PROMPT}
        deltas = 0
        with httpx.stream("POST", gw.url + "/v1/messages", json=body, headers={"x-api-key": secret},
                          timeout=10) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if line.startswith("event: content_block_delta"):
                    deltas += 1
                    if deltas == 28:
                        break
        row = gw.rows(1)[-1]
        assert (row["status"], row["error"], row["estimated"]) == (499, "client_disconnected", 1)
        assert 28 <= row["output_tokens"] <= 30
        if backend == ANTH:
            assert row["input_tokens"] == 400  # message_start said so
        else:
            assert row["input_tokens"] > 0  # OpenAI-format usage only comes in the last chunk: estimated
        assert row["cost_usd"] > 0
        spent, _ = gw.app.keys.spent(gw.app.keys.verify(secret))
        assert spent == pytest.approx(row["cost_usd"])
        whole = gw.client(secret).messages.create(model="m", max_tokens=100, messages=PROMPT)
        assert whole.usage.output_tokens == 30 and gw.rows(2)[-1]["estimated"] == 0


def test_a_budgeted_key_refuses_unpriced_models_unless_allowed(tmp_path) -> None:
    toml = 'default = "fakeoai:gpt-unpriced"\n'
    with FakeProvider({"gpt-unpriced": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, toml, keys=("x",)) as gw:
        env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "flotilla.db")}
        cli = [sys.executable, "-c", "from flotilla.cli.main import main; main()", "keys", "create"]
        capped = subprocess.run(cli + ["--name", "capped", "--budget-usd", "0.07"], env=env, capture_output=True,
                                text=True, check=True).stdout.strip()
        loose = subprocess.run(cli + ["--name", "loose", "--budget-usd", "0.07", "--allow-unpriced"], env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        free = gw.app.keys.create("nobudget")
        with pytest.raises(anthropic.PermissionDeniedError) as info:
            gw.client(capped).messages.create(model="m", max_tokens=5, messages=PROMPT)
        assert "fakeoai:gpt-unpriced" in info.value.message
        assert '[models."fakeoai:gpt-unpriced"]' in info.value.message and "--allow-unpriced" in info.value.message
        assert fp.count() == 0
        for secret in (loose, free):
            assert gw.client(secret).messages.create(model="m", max_tokens=5, messages=PROMPT).content[0].text == "ok"
        assert [r["key_name"] for r in gw.rows(3)] == ["capped", "loose", "nobudget"]


@pytest.mark.parametrize("backend", [OAI, ANTH])
def test_a_sequential_client_never_meets_its_own_last_reservation(tmp_path, backend) -> None:
    # One request's bound ($0.0325) is over the whole budget ($0.03): a request is admitted only when
    # nothing is reserved, so the next one must find the last one settled the moment its answer ends.
    upstream = "gpt-test" if backend == OAI else "claude-up"
    step = {"text": "ok", "input_tokens": 300, "output_tokens": 10}
    with FakeProvider({upstream: step}) as fp, \
            gateway(tmp_path, fp.url, backend, extra=PRICES, keys={"gus": {"budget_usd": 0.03}}) as gw:
        client = gw.client(gw.secrets["gus"])
        for _ in range(6):
            client.messages.create(model="m", max_tokens=1000, messages=PROMPT)
            with client.messages.stream(model="m", max_tokens=1000, messages=PROMPT) as s:
                s.get_final_message()
        spent, reserved = gw.app.keys.spent(gw.app.keys.verify(gw.secrets["gus"]))
        assert fp.count() == 12 and reserved == pytest.approx(0, abs=1e-12)
        assert spent == pytest.approx(12 * (300 * 5 + 10 * 25) / 1e6)
