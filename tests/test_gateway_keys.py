"""Keys, budgets under concurrency, the request log, `flotilla usage`, binding rules and reload."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import anthropic
import httpx
import pytest

from flotilla.errors import UserError
from flotilla.gateway.keys import KeyStore
from flotilla.gateway.server import build_gateway, check_bind
from flotilla.store import SQLiteStore
from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import gateway

OAI = 'default = "fakeoai:gpt-test"\n'
HI = [{"role": "user", "content": "hi"}]


def test_keys_are_stored_hashed_and_checked(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        secret = gw.app.keys.create("alice")
        dump = "\n".join(str(tuple(r)) for r in gw.store.execute("SELECT * FROM gateway_keys"))
        assert secret not in dump and secret[8:] not in dump
        time.sleep(1.1)  # the gateway notices keys created elsewhere within a second
        r = httpx.post(gw.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HI})
        assert r.status_code == 401 and "x-api-key" in r.json()["error"]["message"]
        with pytest.raises(anthropic.AuthenticationError) as info:
            gw.client("flt-wrong-key-123").messages.create(model="m", max_tokens=5, messages=HI)
        assert "flt-wrong" not in str(info.value.body)
        assert gw.client(secret).messages.create(model="m", max_tokens=5, messages=HI).content[0].text == "ok"
        bearer = anthropic.Anthropic(base_url=gw.url, auth_token=secret, max_retries=0)
        assert bearer.messages.create(model="m", max_tokens=5, messages=HI).content[0].text == "ok"
        assert gw.rows(4)[-1]["key_name"] == "alice"
        gw.app.keys.revoke("alice")
        with pytest.raises(anthropic.AuthenticationError):
            gw.client(secret).messages.create(model="m", max_tokens=5, messages=HI)


def test_master_key_from_the_environment_and_model_limits(tmp_path) -> None:
    env = {"FLOTILLA_GATEWAY_MASTER_KEY": "master-secret-value"}
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, \
            gateway(tmp_path, fp.url, OAI + 'aliases = {other = "fakeoai:gpt-other"}\n', environ=env) as gw:
        assert gw.client("master-secret-value").messages.create(model="m", max_tokens=5, messages=HI)
        limited = gw.app.keys.create("bob", models=["fakeoai:gpt-test"])
        assert gw.client(limited).messages.create(model="m", max_tokens=5, messages=HI)
        with pytest.raises(anthropic.PermissionDeniedError, match="bob"):
            gw.client(limited).messages.create(model="other", max_tokens=5, messages=HI)


async def test_budget_holds_under_concurrent_requests(tmp_path) -> None:
    # Each call costs 10 input + 1000 output tokens at $1/$1 per million ≈ $0.001; budget $0.01 ≈ 10 calls.
    prices = '[models."fakeoai:gpt-test"]\ninput = 1.0\noutput = 1.0\n'
    step = {"text": "ok", "input_tokens": 10, "output_tokens": 1000, "delay": 0.05}
    cost = 1010 / 1e6
    with FakeProvider({"gpt-test": step}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        (tmp_path / "flotilla.toml").write_text((tmp_path / "flotilla.toml").read_text() + prices)
        gw.app.live.reload()
        secret = gw.app.keys.create("carol", budget_usd=0.01)
        await asyncio.sleep(1.1)
        client = gw.async_client(secret)
        await client.__aenter__()

        async def one() -> str:
            try:
                await client.messages.create(model="m", max_tokens=1000, messages=HI)
                return "ok"
            except anthropic.RateLimitError as exc:
                assert "carol" in exc.message and "$0.01" in exc.message
                return "429"

        results = await asyncio.gather(*(one() for _ in range(40)))
        await client.close()
        spent, reserved = gw.app.keys.spent(gw.app.keys.verify(secret))
        assert reserved == pytest.approx(0, abs=1e-12)
        estimate = 1010 / 1e6  # about one call's cost: the input estimate is close to 10 tokens
        assert 0.01 <= spent <= 0.01 + estimate * 1.01
        assert results.count("ok") == round(spent / cost) == 10
        assert results.count("429") == 30
        with pytest.raises(anthropic.RateLimitError, match="budget"):
            gw.client(secret).messages.create(model="m", max_tokens=5, messages=HI)


def test_every_request_logged_and_usage_command(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok", "input_tokens": 7, "output_tokens": 3, "cache_read": 2}}) as fp, \
            gateway(tmp_path, fp.url, OAI + 'aliases = {x = "fakeoai:gpt-test"}\n') as gw:
        c = gw.client()
        c.messages.create(model="m", max_tokens=5, messages=HI)
        c.messages.create(model="x", max_tokens=5, messages=HI)
        rows = gw.rows(2)
        assert [r["route"] for r in rows] == ["default", "alias:x"]
        env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "flotilla.db"), "COLUMNS": "200"}
        out = subprocess.run([sys.executable, "-c", "from flotilla.cli.main import main; main()", "usage", "--by", "route", "--since", "1h"],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "default" in out.stdout and "alias:x" in out.stdout


def test_keys_cli_prints_the_key_once(tmp_path) -> None:
    env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "s.db")}
    cli = [sys.executable, "-c", "from flotilla.cli.main import main; main()"]
    made = subprocess.run(cli + ["keys", "create", "--name", "ci", "--budget-usd", "5", "--models", "a:b,c:d"],
                          capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("flt-") and len(secret) > 40
    listed = subprocess.run(cli + ["keys", "list"], capture_output=True, text=True, env=env)
    shown = subprocess.run(cli + ["keys", "show", "ci"], capture_output=True, text=True, env=env)
    assert "ci" in listed.stdout and secret not in listed.stdout + shown.stdout
    assert "5.0" in shown.stdout and "a:b" in shown.stdout
    subprocess.run(cli + ["keys", "revoke", "ci"], check=True, capture_output=True, env=env)
    assert KeyStore(SQLiteStore(tmp_path / "s.db")).verify(secret) is None


def test_non_loopback_bind_refused_without_a_key(tmp_path) -> None:
    (tmp_path / "flotilla.toml").write_text("")
    store = SQLiteStore(tmp_path / "db")
    app = build_gateway(store, cwd=tmp_path, environ={})
    check_bind("127.0.0.1", app)
    with pytest.raises(UserError, match="FLOTILLA_GATEWAY_MASTER_KEY"):
        check_bind("0.0.0.0", app)
    app.keys.create("k")
    check_bind("0.0.0.0", app)


async def test_reload_on_change_keeps_streams_in_flight(tmp_path) -> None:
    slow = {"text": "a b c d e f", "event_delay": 0.15}
    with FakeProvider({"gpt-test": slow, "gpt-new": {"text": "new"}}) as fp, \
            gateway(tmp_path, fp.url, OAI + "reload_interval_s = 0.05\n") as gw:
        client = gw.async_client()

        async def streamed() -> str:
            async with client.messages.stream(model="m", max_tokens=5, messages=HI) as s:
                return "".join([t async for t in s.text_stream])

        task = asyncio.create_task(streamed())
        await asyncio.sleep(0.3)
        toml = tmp_path / "flotilla.toml"
        toml.write_text(toml.read_text().replace('"fakeoai:gpt-test"', '"fakeoai:gpt-new"'))
        await asyncio.sleep(0.1)
        raw = await client.messages.with_raw_response.create(model="m", max_tokens=5, messages=HI)
        assert raw.headers["x-flotilla-route"] == "default; model=fakeoai:gpt-new"
        assert await task == "a b c d e f"
        assert gw.app.live.reloads == 1
        toml.write_text("[gateway\nbroken")  # a broken file keeps the last good configuration
        await asyncio.sleep(0.1)
        assert (await client.messages.create(model="m", max_tokens=5, messages=HI)).content[0].text == "new"
        await client.close()
