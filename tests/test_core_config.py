"""Configuration layers, and errors that name the file, the key and the fix."""

import pytest
from pydantic import BaseModel, ConfigDict

from flotilla.config import load_settings
from flotilla.errors import ConfigError, UnknownModel
from flotilla.models.catalog import Catalog


class RaceSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parallel: int = 4
    check_timeout: float = 600


def test_layers_win_in_order(tmp_path):
    user = tmp_path / "user.toml"
    user.write_text('model = "haiku"\n[race]\nparallel = 2\ncheck_timeout = 10\n')
    project = tmp_path / "proj"
    project.mkdir()
    (project / "flotilla.toml").write_text("[race]\nparallel = 3\n")
    settings = load_settings(cwd=project, environ={"FLOTILLA_RACE__CHECK_TIMEOUT": "20"}, user_file=user)
    race = settings.section("race", RaceSection)
    assert (settings.model, race.parallel, race.check_timeout) == ("haiku", 3, 20)
    flagged = load_settings({"model": "opus"}, cwd=project, environ={}, user_file=user)
    assert flagged.model == "opus"
    assert flagged.origin("model") == "command line"


def test_bad_value_names_file_key_and_fix(tmp_path):
    (tmp_path / "flotilla.toml").write_text("[race]\nparalel = 3\n")
    settings = load_settings(cwd=tmp_path, environ={}, user_file=tmp_path / "none.toml")
    with pytest.raises(ConfigError) as caught:
        settings.section("race", RaceSection)
    message = str(caught.value)
    assert str(tmp_path / "flotilla.toml") in message
    assert "race.paralel" in message
    assert "parallel" in message  # the fix lists the allowed keys


def test_broken_toml_and_bad_provider(tmp_path):
    (tmp_path / "flotilla.toml").write_text("[providers.local]\nkind = 'grpc'\n")
    settings = load_settings(cwd=tmp_path, environ={}, user_file=tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="providers.local.kind.*anthropic"):
        settings.providers()
    (tmp_path / "flotilla.toml").write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cwd=tmp_path, environ={}, user_file=tmp_path / "none.toml")


def test_catalog_aliases_inherit_and_costs():
    catalog = Catalog.load({"models": {"openai:gpt-5": {"input": 2.0}}, "aliases": {"fast": "openai:gpt-5-mini"}})
    assert catalog.resolve("opus").startswith("anthropic:claude-opus")
    assert catalog.resolve("fast") == "openai:gpt-5-mini"
    assert catalog.resolve("inherit", inherit="haiku") == catalog.resolve("haiku")
    assert catalog.resolve("openrouter,deepseek/deepseek-r1") == "openrouter:deepseek/deepseek-r1"
    assert catalog.info("openai:gpt-5").input == 2.0
    assert catalog.info("openai:gpt-5").output == 10.0  # the rest of the entry is kept
    from flotilla.messages import Usage

    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_input_tokens=1_000_000,
                  cache_creation_input_tokens=1_000_000)
    info = catalog.info("anthropic:claude-haiku-5-5")
    assert catalog.cost("anthropic:claude-haiku-5-5", usage) == pytest.approx(
        info.input + info.output + info.cache_read + info.cache_write)
    with pytest.raises(UnknownModel, match="opus"):
        catalog.resolve("gpt-nonsense")
