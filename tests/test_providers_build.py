"""From a model name to a working adapter, and the ``models`` / ``ask`` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flotilla.config import load_settings
from flotilla.errors import MissingApiKey, UnknownModel
from flotilla.messages import Message, MessagesRequest
from flotilla.models.anthropic import AnthropicModel
from flotilla.models.openai import OpenAIModel
from flotilla.models.providers import build_model, key_status
from flotilla.testing import ScriptedModel, register_scripted, reply

FLOTILLA = str(Path(sys.executable).parent / "flotilla")
HELLO = MessagesRequest(model="x", messages=[Message(role="user", content="hello there")], max_tokens=32)


def settings_in(folder: Path, toml: str = ""):
    (folder / "flotilla.toml").write_text(toml)
    return load_settings(cwd=folder, environ={}, user_file=folder / "no-user.toml")


def test_aliases_resolve_and_keys_come_from_the_environment(tmp_path) -> None:
    settings = settings_in(tmp_path)
    model = build_model("sonnet", settings=settings, environ={"ANTHROPIC_API_KEY": "sk-test"})
    assert isinstance(model, AnthropicModel) and model.name == "anthropic:claude-sonnet-5-5"
    gpt = build_model("openai:gpt-5", settings=settings, environ={"OPENAI_API_KEY": "sk-test"})
    assert isinstance(gpt, OpenAIModel) and gpt.name == "openai:gpt-5"
    local = build_model("ollama:qwen3-coder", settings=settings, environ={})  # local servers need no key
    assert local.name == "ollama:qwen3-coder"


def test_a_missing_key_names_the_variable(tmp_path) -> None:
    with pytest.raises(MissingApiKey) as caught:
        build_model("openrouter:some/model", settings=settings_in(tmp_path), environ={})
    assert caught.value.env_var == "OPENROUTER_API_KEY" and "OPENROUTER_API_KEY" in str(caught.value)


def test_unknown_provider_and_model_name_what_exists(tmp_path) -> None:
    settings = settings_in(tmp_path)
    with pytest.raises(UnknownModel) as caught:
        build_model("mistral:large", settings=settings, environ={})
    assert "unknown provider 'mistral'" in str(caught.value)
    assert {"anthropic", "openai", "gemini", "ollama"} <= set(caught.value.known)
    with pytest.raises(UnknownModel) as caught:
        build_model("sonet", settings=settings, environ={})
    assert "sonnet" in caught.value.known
    with pytest.raises(UnknownModel) as caught:
        build_model("scripted:nothing-here", settings=settings, environ={})
    assert "scripted:echo" in caught.value.known


async def test_configured_providers_reach_the_server_with_their_key_and_headers(tmp_path, fake_provider) -> None:
    fp = fake_provider({"claude-local": {"text": "from the anthropic kind"},
                        "qwen": {"text": "from the openai kind"}}, api_key="sk-local")
    settings = settings_in(tmp_path, f"""
[providers.mine]
kind = "anthropic"
base_url = "{fp.url}"
api_key_env = "MINE_KEY"

[providers.box]
kind = "openai"
base_url = "{fp.url}/v1"
api_key_env = "BOX_KEY"
headers = {{ "HTTP-Referer" = "https://flotilla.test" }}
""")
    environ = {"MINE_KEY": "sk-local", "BOX_KEY": "sk-local"}
    mine = build_model("mine:claude-local", settings=settings, environ=environ)
    box = build_model("box:qwen", settings=settings, environ=environ)
    assert (await mine.request(HELLO)).text() == "from the anthropic kind"
    assert (await box.request(HELLO)).text() == "from the openai kind"
    assert fp.received[1].headers["http-referer"] == "https://flotilla.test"
    wrong = build_model("mine:claude-local", settings=settings, environ={"MINE_KEY": "sk-wrong"})
    with pytest.raises(Exception, match="401"):
        await wrong.request(HELLO)


async def test_scripted_models_come_from_the_registry(tmp_path) -> None:
    settings = settings_in(tmp_path)
    echo = build_model("scripted:echo", settings=settings, environ={})
    assert echo.name == "scripted:echo" and (await echo.request(HELLO)).text() == "hello there"
    register_scripted("test-build-two-steps", lambda: ScriptedModel([reply("one"), reply("two")]))
    first = build_model("scripted:test-build-two-steps", settings=settings, environ={})
    second = build_model("scripted:test-build-two-steps", settings=settings, environ={})
    assert first.name == "scripted:test-build-two-steps"
    assert [(await first.request(HELLO)).text(), (await second.request(HELLO)).text()] == ["one", "one"]


def test_key_status_says_which_variable_is_set(tmp_path) -> None:
    status = key_status(settings_in(tmp_path), {"OPENAI_API_KEY": "x"})
    assert status["openai"] == "set (OPENAI_API_KEY)"
    assert status["anthropic"] == "missing (ANTHROPIC_API_KEY)" and status["ollama"] == "not needed"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("FLOTILLA_")}
    return subprocess.run([FLOTILLA, *args], cwd=cwd, env={**base, "HOME": str(cwd), "COLUMNS": "200",
                                                            **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_ask_scripted_echo_works_offline(tmp_path) -> None:
    result = run("ask", "scripted:echo", "hi there", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi there\n"
    assert "scripted:echo" in result.stderr and " in, " in result.stderr and "$" in result.stderr
    as_json = json.loads(run("ask", "scripted:echo", "hi", "--json", cwd=tmp_path).stdout)
    assert as_json["response"]["content"][0]["text"] == "hi" and as_json["cost_usd"] > 0


def test_ask_goes_through_the_whole_stack_with_fallbacks(tmp_path, fake_provider) -> None:
    fp = fake_provider({"primary": [{"status": 529}], "backup": [{"text": "the backup answered"}]})
    (tmp_path / "flotilla.toml").write_text(f'[providers.fake]\nkind = "anthropic"\nbase_url = "{fp.url}"\n')
    result = run("ask", "fake:primary", "hello", "--fallback-model", "fake:backup", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the backup answered\n" and "fake:backup" in result.stderr
    assert (fp.count("primary"), fp.count("backup")) == (1, 1)


def test_ask_explains_a_missing_key_and_an_unknown_provider(tmp_path) -> None:
    missing = run("ask", "opus", "hi", cwd=tmp_path)
    assert missing.returncode == 2 and "ANTHROPIC_API_KEY" in missing.stderr
    unknown = run("ask", "nowhere:model", "hi", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown provider 'nowhere'" in unknown.stderr and "openrouter" in unknown.stderr


def test_models_lists_the_catalog_and_the_keys(tmp_path) -> None:
    result = run("models", cwd=tmp_path, env={"GEMINI_API_KEY": "x"})
    assert result.returncode == 0, result.stderr
    assert "anthropic:claude-opus-5-5" in result.stdout and "opus" in result.stdout
    assert "set (GEMINI_API_KEY)" in result.stdout and "missing (ANTHROPIC_API_KEY)" in result.stdout
    data = json.loads(run("models", "--json", cwd=tmp_path).stdout)
    sonnet = next(m for m in data["models"] if m["name"] == "anthropic:claude-sonnet-5-5")
    assert sonnet["aliases"] == ["sonnet"] and sonnet["input"] == 3.0
