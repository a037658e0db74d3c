"""The gateway's routing rules, each matched, on real configuration objects."""

from __future__ import annotations

import pytest

from flotilla.errors import ConfigError
from flotilla.gateway.config import GatewayConfig
from flotilla.gateway.errors import GatewayError
from flotilla.gateway.routing import Router
from flotilla.messages import MessagesRequest
from flotilla.models.catalog import Catalog

CONFIG = {
    "default": "openai:gpt-default",
    "background": "ollama:small",
    "think": ["openai:thinker", "openrouter:thinker-backup"],
    "longContext": "gemini:long",
    "longContextThreshold": 1000,
    "webSearch": "openrouter:searcher",
    "aliases": {"fast": "openai:fast"},
    "headers": [{"header": "X-Team", "equals": "infra", "model": "vllm:infra"},
                {"header": "x-any", "model": "vllm:any"}],
    "fallbacks": {"openai:gpt-default": ["openrouter:gpt-default"]},
}


def router(tmp_path=None, **changes) -> Router:
    return Router(GatewayConfig.model_validate({**CONFIG, **changes}), Catalog.load(), root=tmp_path)


def req(model: str = "claude-sonnet-5-5", text: str = "hi", **extra) -> MessagesRequest:
    return MessagesRequest.model_validate({"model": model, "max_tokens": 100,
                                           "messages": [{"role": "user", "content": text}], **extra})


def test_explicit_provider_model_and_claude_code_router_comma_form() -> None:
    assert router().route(req("openai:gpt-x"), {}).chain == ("openai:gpt-x",)
    route = router().route(req("openrouter,anthropic/claude"), {})
    assert (route.rule, route.chain) == ("explicit", ("openrouter:anthropic/claude",))


def test_alias() -> None:
    assert router().route(req("fast"), {}).rule == "alias:fast"


def test_background_matches_the_haiku_family_not_a_fixed_name() -> None:
    for name in ("claude-haiku-5-5", "claude-3-5-haiku-20241022", "haiku"):
        assert router().route(req(name), {}).chain == ("ollama:small",)


def test_think_gives_its_whole_chain() -> None:
    route = router().route(req(thinking={"type": "adaptive"}), {})
    assert route == route.__class__("think", ("openai:thinker", "openrouter:thinker-backup"))
    assert router().route(req(thinking={"type": "disabled"}), {}).rule == "default"


def test_long_context_over_the_threshold() -> None:
    assert router().route(req(text="x" * 8000), {}).rule == "longContext"
    assert router().route(req(text="x" * 100), {}).rule == "default"


def test_web_search_tool() -> None:
    r = req(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}])
    assert router().route(r, {}).chain == ("openrouter:searcher",)


def test_header_rules_in_order() -> None:
    assert router().route(req(), {"x-team": "infra"}).chain == ("vllm:infra",)
    assert router().route(req(), {"x-team": "web"}).rule == "default"
    assert router().route(req(), {"x-any": "whatever"}).rule == "header:x-any"


def test_user_function_from_a_file(tmp_path) -> None:
    (tmp_path / "myroute.py").write_text(
        "def route(request):\n"
        "    return 'lmstudio:local' if 'secret' in request.messages[-1].text() else None\n")
    r = router(tmp_path, router="myroute.py:route")
    assert r.route(req(text="the secret plan"), {}) .chain == ("lmstudio:local",)
    assert r.route(req(text="public"), {}).rule == "default"


def test_user_function_that_cannot_load_names_the_key(tmp_path) -> None:
    with pytest.raises(ConfigError, match="gateway.router"):
        router(tmp_path, router="missing.py:route")


def test_default_adds_configured_fallbacks_and_no_default_passes_through() -> None:
    assert router().route(req(), {}).chain == ("openai:gpt-default", "openrouter:gpt-default")
    plain = router(default=None)
    assert plain.route(req("claude-opus-5-5"), {}) .chain == ("anthropic:claude-opus-5-5",)
    assert plain.route(req("sonnet"), {}).chain == ("anthropic:claude-sonnet-5-5",)


def test_unknown_model_is_404() -> None:
    with pytest.raises(GatewayError) as info:
        router(default=None).route(req("mystery"), {})
    assert info.value.status == 404


def test_chain_longer_than_three_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 3"):
        GatewayConfig.model_validate({"default": ["a:1", "a:2", "a:3", "a:4"]})
