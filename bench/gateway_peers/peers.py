"""The gateways under test: how to install (peers only, into temp dirs) and start each one.

Nothing third-party is kept in the repository: LiteLLM goes into its own
virtualenv and claude-code-router into an npm prefix, both under the bench's
work directory (reused between runs when already there).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL = "bench-model"


@dataclass
class Target:
    name: str
    port: int
    cmd: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/messages"
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every request (LiteLLM refuses to start without a master key, so it gets one)."""


def flotilla(work: Path, port: int, upstream: int, *, fast_path: bool = True, baseline: str | None = None) -> Target:
    """Ours; ``fast_path=False`` is the same gateway on the OpenAI SDK adapter (the "before" figures);
    ``baseline`` a git ref of this repository, checked out under ``work`` and run in its place."""
    name = f"flotilla@{baseline}" if baseline else "flotilla" if fast_path else "flotilla-sdk"
    home = work / name.replace("/", "_")
    home.mkdir(parents=True, exist_ok=True)
    (home / "flotilla.toml").write_text(
        f'[providers.up]\nkind = "openai"\nbase_url = "http://127.0.0.1:{upstream}/v1"\n\n'
        f'[providers.upa]\nkind = "anthropic"\nbase_url = "http://127.0.0.1:{upstream}"\n'
        'api_key_env = "BENCH_UPSTREAM_KEY"\n\n'
        f'[gateway]\ndefault = "up:{MODEL}"\nfast_path = {str(fast_path).lower()}\n')
    db = home / "flotilla.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    cmd = [sys.executable, "-c", "from flotilla.cli.main import main; main()", "gateway", "--port", str(port),
           "--store", str(db)]
    env = {"HOME": str(home), "BENCH_UPSTREAM_KEY": "sk-bench"}
    if baseline:
        env["PYTHONPATH"] = str(checkout(work, baseline) / "src")
    return Target(name, port, cmd, home, env)


def checkout(work: Path, ref: str) -> Path:
    """A detached worktree of ``ref`` under ``work`` (made again when the ref moved)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    tree = work / f"baseline-{commit[:12]}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
                       capture_output=True, check=True)
    return tree


FRONT_DOORS = ("chat", "responses", "gemini")
"""Front doors measured on the flotilla process: Chat Completions in → OpenAI out, Responses in →
Anthropic out (provider ``upa``), Gemini in → OpenAI out."""


def front_request(door: str, stream: bool) -> tuple[str, dict, dict[str, str]]:
    """The path, body and headers of one request through a front door."""
    prompt = PROMPT_TEXT
    if door == "chat":
        body = {"model": f"up:{MODEL}", "messages": [{"role": "user", "content": prompt}], "max_tokens": 256,
                "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", body, {"Authorization": "Bearer sk-bench"}
    if door == "responses":
        return ("/v1/responses", {"model": f"upa:{MODEL}", "input": prompt, "max_output_tokens": 256,
                                  "stream": stream}, {"Authorization": "Bearer sk-bench"})
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return (f"/v1beta/models/up:{MODEL}:{verb}", {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                                                 "generationConfig": {"maxOutputTokens": 256}},
            {"x-goog-api-key": "sk-bench"})


PROMPT_TEXT = "Say hello in about twenty words."


def flotilla_sdk(work: Path, port: int, upstream: int) -> Target:
    return flotilla(work, port, upstream, fast_path=False)


def litellm(work: Path, port: int, upstream: int) -> Target | str:
    venv = work / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print("  installing litellm[proxy] into", venv, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                              capture_output=True, text=True)
        if done.returncode != 0 or not exe.exists():
            return f"pip install litellm[proxy] failed: {done.stderr.strip()[-300:]}"
    home = work / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: claude-sonnet-5-5\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  use_chat_completions_url_for_anthropic_messages: true\n"
        "  drop_params: true\n"
        "  turn_off_message_logging: true\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n")
    cmd = [str(exe), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    master = "sk-" + secrets.token_hex(32)
    env = {"HOME": str(home), "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": master, "LITELLM_MODE": "PRODUCTION",
           "DISABLE_SCHEMA_UPDATE": "true", "USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "true"}
    return Target("litellm", port, cmd, home, env, headers={"x-api-key": master,
                                                             "authorization": f"Bearer {master}"})


def claude_code_router(work: Path, port: int, upstream: int) -> Target | str:
    prefix = work / "ccr"
    cli = prefix / "node_modules" / "@musistudio" / "claude-code-router" / "dist" / "cli.js"
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    if not cli.exists():
        print("  installing @musistudio/claude-code-router into", prefix, flush=True)
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--silent", "--prefix", str(prefix),
                               "@musistudio/claude-code-router"], capture_output=True, text=True)
        if done.returncode != 0 or not cli.exists():
            return f"npm install failed: {done.stderr.strip()[-300:]}"
    home = work / "ccr-home"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    (home / ".claude-code-router" / "config.json").write_text(json.dumps({
        "PORT": port, "HOST": "127.0.0.1", "LOG": False,
        "Providers": [{"name": "up", "api_base_url": f"http://127.0.0.1:{upstream}/v1/chat/completions",
                       "api_key": "sk-bench", "models": [MODEL]}],
        "Router": {"default": f"up,{MODEL}"}}))
    return Target("claude-code-router", port, [node, str(cli), "start"], home, {"HOME": str(home)})


def environment(target: Target) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOTILLA_", "ANTHROPIC_", "OPENAI_"))}
    env.update(target.env)
    return env
