"""Configuration, layered: defaults < ~/.config/flotilla/config.toml < ./flotilla.toml
< FLOTILLA_* environment < command-line flags.

Each component reads its own section with its own typed model through
``Settings.section``; a bad value fails there with the file, the key and the fix.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError, nearest

T = TypeVar("T", bound=BaseModel)


class ProviderConfig(BaseModel):
    """Where a provider is and how to authenticate to it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["anthropic", "openai", "scripted"]
    """Which wire API it speaks: Anthropic Messages or OpenAI Chat Completions."""
    base_url: str | None = None
    """Its endpoint; None is the SDK's own default."""
    api_key_env: str | None = None
    """The environment variable holding its key; None when it needs no key (local servers)."""
    headers: dict[str, str] = {}
    """Extra headers sent with every request (OpenRouter's ``HTTP-Referer``, say)."""


PRESETS: dict[str, ProviderConfig] = {
    "anthropic": ProviderConfig(kind="anthropic", api_key_env="ANTHROPIC_API_KEY"),
    "openai": ProviderConfig(kind="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"),
    "openrouter": ProviderConfig(kind="openai", base_url="https://openrouter.ai/api/v1",
                                 api_key_env="OPENROUTER_API_KEY"),
    "gemini": ProviderConfig(kind="openai", base_url="https://generativelanguage.googleapis.com/v1beta/openai/",
                             api_key_env="GEMINI_API_KEY"),
    "vllm": ProviderConfig(kind="openai", base_url="http://127.0.0.1:8000/v1"),
    "ollama": ProviderConfig(kind="openai", base_url="http://127.0.0.1:11434/v1"),
    "lmstudio": ProviderConfig(kind="openai", base_url="http://127.0.0.1:1234/v1"),
    "scripted": ProviderConfig(kind="scripted"),
}

TOP_LEVEL = ("model", "subagent_model", "max_tokens", "providers", "models", "aliases", "race", "gateway",
             "worker", "advisor", "hooks", "limits", "sandbox", "ledger")
"""Every top-level key or section a configuration file may hold; anything else is a typo to report."""

USER_FILE = Path("~/.config/flotilla/config.toml")
PROJECT_FILE = "flotilla.toml"
ENV_PREFIX = "FLOTILLA_"


class Settings:
    """The merged configuration, remembering which source set each key."""

    def __init__(self, data: dict[str, Any], origins: dict[str, str], root: Path) -> None:
        self.data = data
        self.origins = origins
        self.root = root

    @property
    def model(self) -> str:
        """The default model for runs that name none."""
        return str(self.data.get("model", "sonnet"))

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def origin(self, dotted: str) -> str:
        """The source (file, environment variable or flag) that set a key or its nearest parent."""
        while dotted:
            if dotted in self.origins:
                return self.origins[dotted]
            dotted = dotted.rpartition(".")[0]
        return "defaults"

    def section(self, name: str, model: type[T]) -> T:
        """The section ``name`` validated as ``model``; errors name the file and the key."""
        raw = self.data.get(name, {})
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join([name, *map(str, err["loc"])])
            hint = _fix_for(err, model)
            raise ConfigError(self.origin(key), key, err["msg"], hint) from None

    def providers(self) -> dict[str, ProviderConfig]:
        """The presets with the user's ``[providers.NAME]`` tables merged on top."""
        result = dict(PRESETS)
        for name, table in self.data.get("providers", {}).items():
            base = result[name].model_dump() if name in result else {}
            try:
                result[name] = ProviderConfig.model_validate({**base, **table})
            except ValidationError as exc:
                err = exc.errors()[0]
                key = ".".join(["providers", name, *map(str, err["loc"])])
                raise ConfigError(self.origin(key), key, err["msg"], _fix_for(err, ProviderConfig)) from None
        return result


def load_settings(flags: dict[str, Any] | None = None, *, cwd: Path | None = None,
                  environ: dict[str, str] | None = None, user_file: Path | None = None) -> Settings:
    """Reads every layer and merges them, later layers winning key by key."""
    cwd = cwd or Path.cwd()
    environ = dict(os.environ if environ is None else environ)
    root = _project_root(cwd)
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    user = (user_file or USER_FILE).expanduser()
    for path in (user, root / PROJECT_FILE):
        if path.is_file():
            layer = _read_toml(path)
            _check_top_level(layer, str(path))
            _merge(data, layer, origins, str(path))
    env_layer: dict[str, Any] = {}
    for var, value in environ.items():
        if var.startswith(ENV_PREFIX) and var not in ("FLOTILLA_STORE",):
            keys = var[len(ENV_PREFIX):].lower().split("__")
            node = env_layer
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
            _merge(data, env_layer, origins, f"environment variable {var}")
            env_layer = {}
    _merge(data, {k: v for k, v in (flags or {}).items() if v is not None}, origins, "command line")
    return Settings(data, origins, root)


def project_root(cwd: Path) -> Path:
    """The nearest folder at or above ``cwd`` holding ``flotilla.toml`` or ``.git`` (a worktree's own root)."""
    return _project_root(cwd)


def claude_dir(environ: dict[str, str] | None = None) -> Path:
    """The user's Claude Code folder: ``$CLAUDE_CONFIG_DIR`` when set (as Claude Code honours it), else ``~/.claude``.

    Everything flotilla reads from the user's side of Claude Code's environment (``CLAUDE.md``,
    ``settings.json``, ``skills/``, ``agents/``) is found here, so one variable moves all of it
    (tests point it at a temporary folder)."""
    env = os.environ if environ is None else environ
    configured = env.get("CLAUDE_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".claude"


def _project_root(cwd: Path) -> Path:
    for folder in (cwd, *cwd.parents):
        if (folder / PROJECT_FILE).is_file() or (folder / ".git").exists():
            return folder
    return cwd


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "(file)", f"not valid TOML ({exc})",
                          "correct the syntax at the line named") from None


def _check_top_level(layer: dict[str, Any], source: str) -> None:
    for key, value in layer.items():
        if key not in TOP_LEVEL:
            kind = "section" if isinstance(value, dict) else "key"
            guess = nearest(key, list(TOP_LEVEL))
            hint = f"did you mean {guess!r}? " if guess else ""
            raise ConfigError(source, key, f"unknown {kind}",
                              f"{hint}the top-level names are {', '.join(sorted(TOP_LEVEL))}")


def _merge(into: dict[str, Any], layer: dict[str, Any], origins: dict[str, str], source: str,
           prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, origins, source, dotted + ".")
        else:
            into[key] = value
        origins[dotted] = source


def _fix_for(err: dict[str, Any], model: type[BaseModel]) -> str:
    if err["type"] == "extra_forbidden":
        guess = nearest(str(err["loc"][-1]), list(model.model_fields)) if err["loc"] else None
        hint = f"did you mean {guess!r}? " if guess else "remove it; "
        return f"{hint}the keys allowed here are {', '.join(sorted(model.model_fields))}"
    if err["type"] == "literal_error":
        return f"use one of {err.get('ctx', {}).get('expected', '')}"
    if err["type"] == "missing":
        return "add it"
    return f"give a value of the right type (got {err.get('input')!r})"
