"""Who may call the gateway: auth decided at bind, keys that stay on, scrubbed errors, /metrics, key names."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import anthropic
import httpx
import pytest

from flotilla.errors import UserError
from flotilla.gateway.server import build_gateway, check_bind
from flotilla.store import SQLiteStore
from flotilla.testing.fake_provider import FakeProvider
from test_gateway_support import gateway

OAI = 'default = "fakeoai:gpt-test"\n'
HI = [{"role": "user", "content": "hi"}]
BODY = {"model": "m", "max_tokens": 5, "messages": HI}
CLI = [sys.executable, "-c", "from flotilla.cli.main import main; main()"]


def post(gw, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(gw.url + "/v1/messages", json=BODY, headers=headers or {}, timeout=10)


def test_revoking_every_key_from_another_process_never_opens_a_running_gateway(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, \
            gateway(tmp_path, fp.url, OAI, host="0.0.0.0", keys=("alice", "bob")) as gw:
        assert post(gw, {"x-api-key": gw.secrets["alice"]}).status_code == 200
        env = {**os.environ, "FLOTILLA_STORE": str(tmp_path / "flotilla.db")}
        for name in ("alice", "bob"):
            subprocess.run(CLI + ["keys", "revoke", name], check=True, capture_output=True, env=env)
        time.sleep(1.1)  # the gateway's once-a-second look at the store, if it still had one
        for headers in ({}, {"x-api-key": gw.secrets["alice"]}, {"x-api-key": "anything"},
                        {"authorization": "Bearer anything"}):
            r = post(gw, headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.json()["error"]["type"] == "authentication_error"
        assert "revoked" in post(gw, {"x-api-key": "anything"}).json()["error"]["message"]
        assert fp.count() == 1
        rows = gw.rows(6)
        assert [r["key_name"] for r in rows[1:]] == ["(unauthenticated)"] * 5
        assert "anonymous" not in {r["key_name"] for r in rows}


def test_auto_mode_on_loopback_closes_for_good_once_a_key_exists(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        assert gw.app.auth.mode.startswith("open on loopback")
        assert post(gw).status_code == 200
        secret = gw.app.keys.create("carol")
        time.sleep(1.1)
        assert post(gw).status_code == 401
        assert post(gw, {"x-api-key": secret}).status_code == 200
        gw.app.keys.revoke("carol")
        time.sleep(1.1)
        assert post(gw).status_code == 401
        assert gw.app.auth.mode.startswith("keys")


def test_a_store_that_ever_had_keys_starts_closed(tmp_path) -> None:
    (tmp_path / "flotilla.toml").write_text("")
    store = SQLiteStore(tmp_path / "db")
    app = build_gateway(store, cwd=tmp_path, environ={})
    app.keys.create("old")
    app.keys.revoke("old")
    again = build_gateway(store, cwd=tmp_path, environ={})
    check_bind("127.0.0.1", again)
    assert again.auth.required


def test_explicit_modes(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, OAI + 'auth = "keys"\n') as gw:
        r = post(gw)
        assert r.status_code == 401 and "flotilla keys create" in r.json()["error"]["message"]
        assert fp.count() == 0
    (tmp_path / "flotilla.toml").write_text('[gateway]\nauth = "open"\n')
    app = build_gateway(SQLiteStore(tmp_path / "db2"), cwd=tmp_path, environ={})
    app.keys.create("k")
    with pytest.raises(UserError, match='auth = "open"'):
        check_bind("0.0.0.0", app)
    check_bind("127.0.0.1", app)
    assert not app.auth.required  # open was asked for, on loopback: keys do not matter


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_upstream_errors_are_scrubbed_of_keys(tmp_path, backend) -> None:
    secret = "sk-upstream-secret-0123456789"
    kind = "openai" if backend == "openai" else "anthropic"
    base = "/v1" if backend == "openai" else ""
    step = {"status": 400, "message": "bad request", "echo_auth": True}
    with FakeProvider({"up-model": step}) as fp:
        providers = f'[providers.keyed]\nkind = "{kind}"\nbase_url = "{fp.url}{base}"\napi_key_env = "KEYED_KEY"\n'
        with gateway(tmp_path, fp.url, 'default = "keyed:up-model"\n', providers=providers,
                     environ={"KEYED_KEY": secret}) as gw:
            r = post(gw)
            message = r.json()["error"]["message"]
            assert r.status_code == 400 and "bad request" in message
            assert fp.received[-1].headers.get("authorization", fp.received[-1].headers.get("x-api-key", "")) \
                .endswith(secret)  # the upstream did see it, and echoed it
            assert secret not in message and secret[:12] not in message and "[redacted]" in message


def test_metrics_need_a_key_off_loopback(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, \
            gateway(tmp_path, fp.url, OAI, host="0.0.0.0", keys=("ops",)) as gw:
        assert httpx.get(gw.url + "/metrics").status_code == 401
        r = httpx.get(gw.url + "/metrics", headers={"x-api-key": gw.secrets["ops"]})
        assert r.status_code == 200 and "flotilla_gateway_requests_total" in r.text
        assert httpx.get(gw.url + "/health").status_code == 200  # probes stay open
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, OAI) as gw:
        assert httpx.get(gw.url + "/metrics").status_code == 200


def test_refused_requests_carry_their_key_name_and_revoked_names_are_reusable(tmp_path) -> None:
    with FakeProvider({"gpt-test": {"text": "ok"}}) as fp, gateway(tmp_path, fp.url, OAI, keys=("dana",)) as gw:
        bad = httpx.post(gw.url + "/v1/messages", json={"model": "m", "messages": HI},
                         headers={"x-api-key": gw.secrets["dana"]})
        assert bad.status_code == 400
        assert post(gw).status_code == 401
        assert [r["key_name"] for r in gw.rows(2)] == ["dana", "(unauthenticated)"]
        gw.app.keys.flush()
        assert None not in {r["name"] for r in gw.app.keys.usage("key")}
        with pytest.raises(UserError, match="revoke it first"):
            gw.app.keys.create("dana")
        gw.app.keys.revoke("dana")
        fresh = gw.app.keys.create("dana")
        assert post(gw, {"x-api-key": fresh}).status_code == 200
        assert post(gw, {"x-api-key": gw.secrets["dana"]}).status_code == 401  # the old one stays revoked
        names = {k["name"]: k["revoked"] for k in gw.app.keys.list()}
        assert names["dana"] is False and [n for n, revoked in names.items() if revoked][0].startswith("dana~")
