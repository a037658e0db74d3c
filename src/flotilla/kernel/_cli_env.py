"""How each external CLI is pointed at flotilla's gateway, and what it calls a model.

Each CLI has its own way to be told a base URL and a key (verified on the versions in
``external.BUILT_IN``): Claude Code reads ``ANTHROPIC_BASE_URL``; Codex a ``model_providers``
entry in the ``config.toml`` of its ``CODEX_HOME`` (it speaks only the Responses API); aider
(litellm) ``OPENAI_API_BASE`` with an ``openai/`` model; Gemini CLI ``GOOGLE_GEMINI_BASE_URL``,
``GEMINI_API_KEY`` and a settings file choosing API-key auth under its ``HOME``. Each attempt gets
its own home directory (outside the worktree), so nothing a CLI writes for itself lands in the
project, and no user configuration changes where it sends its requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError

QUIET = {"DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
         "DO_NOT_TRACK": "1", "NO_COLOR": "1", "AIDER_ANALYTICS": "false", "AIDER_CHECK_UPDATE": "false",
         "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
"""No telemetry, update checks or colour: an attempt talks to the gateway and nothing else."""
UNSET = ("ANTHROPIC_AUTH_TOKEN", "OPENAI_BASE_URL", "OPENAI_ORGANIZATION", "GOOGLE_API_KEY",
         "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT")
"""Variables that would send a CLI elsewhere or authenticate it otherwise: emptied."""


def cli_model(kind: str | None, model: str, catalog: Any, *, metered: bool) -> str:
    """The model as the CLI names it: a flotilla alias or ``provider:model`` becomes the provider's own
    id (``sonnet`` → ``claude-sonnet-4-5``); aider (litellm) wants ``provider/id``, and through the
    gateway ``openai/id``. Any other command gets the name as it was given."""
    if kind is None or not model:
        return model
    full = resolve(model, catalog)
    provider, _, model_id = full.rpartition(":")
    if kind == "aider":
        return f"openai/{model_id}" if metered or not provider else f"{provider}/{model_id}"
    return model_id


def resolve(model: str, catalog: Any) -> str:
    """The ``provider:model`` name of a flotilla model name or alias; the name itself when the
    catalog does not know it."""
    try:
        return catalog.resolve(model)
    except UserError:
        return model


def gateway_env(kind: str, *, url: str, key: str, home: Path, model: str = "", info: Any = None) -> dict[str, str]:
    """The environment (and, under ``home``, the configuration files) that send ``kind``'s every
    model call to the gateway at ``url`` with ``key``; ``model`` is the CLI's name for the model and
    ``info`` its catalog entry (aider is told its limits and prices, so it fetches no price list)."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    # its own TMPDIR too: Codex will not make its sandbox helpers in a CODEX_HOME under the temp folder
    env = {**QUIET, **{name: "" for name in UNSET}, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "TMPDIR": str(home / "tmp")}
    if kind == "claude-code":
        env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=key)
    elif kind == "codex":
        codex_home = home / ".codex"
        codex_home.mkdir(exist_ok=True)
        (codex_home / "config.toml").write_text(codex_config(url))
        env.update(CODEX_HOME=str(codex_home), FLOTILLA_GATEWAY_KEY=key, OPENAI_API_KEY="")
    elif kind == "aider":
        env.update(OPENAI_API_BASE=f"{url}/v1", OPENAI_API_KEY=key)
        if model:
            (home / ".aider.model.metadata.json").write_text(json.dumps({model: aider_metadata(info)}))
    elif kind == "gemini":
        settings = home / ".gemini" / "settings.json"
        settings.parent.mkdir(exist_ok=True)
        settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}},
                                        "privacy": {"usageStatisticsEnabled": False}}))
        env.update(GOOGLE_GEMINI_BASE_URL=url, GEMINI_API_KEY=key)
    return env


def aider_metadata(info: Any) -> dict[str, Any]:
    """A model's entry in aider's (litellm's) metadata format, from flotilla's catalog."""
    return {"max_input_tokens": getattr(info, "context_window", 200_000),
            "max_output_tokens": getattr(info, "max_output", 8192), "max_tokens": getattr(info, "max_output", 8192),
            "input_cost_per_token": getattr(info, "input", 0.0) / 1e6,
            "output_cost_per_token": getattr(info, "output", 0.0) / 1e6,
            "litellm_provider": "openai", "mode": "chat"}


def codex_config(url: str) -> str:
    """Codex's ``config.toml``: one provider, the gateway, on the Responses API (the only one it
    speaks), with its retries left to the gateway's fallbacks, and no analytics."""
    return (f'model_provider = "flotilla"\n\n[model_providers.flotilla]\nname = "flotilla gateway"\n'
            f'base_url = "{url}/v1"\nenv_key = "FLOTILLA_GATEWAY_KEY"\nwire_api = "responses"\n'
            'request_max_retries = 1\nstream_max_retries = 1\n\n[analytics]\nenabled = false\n')
