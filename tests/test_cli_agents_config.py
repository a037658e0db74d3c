"""``flotilla agents``, configuration mistakes, --help and unknown costs, through the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLOTILLA = [str(Path(sys.executable).parent / "flotilla")]


def flotilla(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "COLUMNS"}
    return subprocess.run([*FLOTILLA, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**environ, "HOME": str(cwd.parent / "home"), "FLOTILLA_STORE": str(cwd / "store.db"),
                               "CLAUDE_CONFIG_DIR": str(cwd.parent / "home" / ".claude"), **env})


def agent(folder: Path, name: str, front: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(f"---\n{front}\n---\nYou help.\n")


def row(text: str, *cells: str) -> str:
    return next(line for line in text.splitlines() if all(c in line for c in cells))


def test_agents_shows_which_file_won_and_every_broken_field(tmp_path):
    home, tmp_path = tmp_path / "home", tmp_path / "project"
    agent(tmp_path / ".flotilla" / "agents", "mine", "name: mine\nmodel: sonnet")
    agent(tmp_path / ".claude" / "agents", "mine", "name: mine\nmodel: haiku")
    agent(tmp_path / ".claude" / "agents", "reviewer", "name: reviewer\nmodel: opus")
    agent(home / ".claude" / "agents", "mine", "name: mine\nmodel: opus")
    agent(tmp_path / ".claude" / "agents", "g5", "name: g5\nmodel: gpt5")
    agent(tmp_path / ".claude" / "agents", "ns", "name: ns\nmodel: nosuch:x")
    agent(tmp_path / ".claude" / "agents", "webby", "name: webby\nmodel: haiku\ntools: Read, WebFetch")
    listed = flotilla(tmp_path, "agents")
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    won = row(out, ".flotilla/agents/mine.md")
    assert "anthropic:claude-sonnet-5-5" in won and "shadowed" not in won
    assert "shadowed by .flotilla/agents/mine.md" in row(out, ".claude/agents/mine.md")
    assert "shadowed by .flotilla/agents/mine.md" in row(out, "~/.claude/agents/mine.md")
    assert "shadowed by .claude/agents/reviewer.md" in row(out, "reviewer", "built-in")
    assert "broken: field 'model': unknown model 'gpt5' (did you mean 'openai:gpt-5'?)" in row(out, "g5.md")
    assert "broken: field 'model': unknown provider 'nosuch'" in row(out, "ns.md")
    assert "'WebFetch' is not one of flotilla's tools" in row(out, "webby.md")
    # every other agent keeps its full row: model and tools
    assert "anthropic:claude-opus-5-5" in row(out, "architect", "built-in")
    assert "Read, Glob, Grep" in row(out, "architect", "built-in")
    assert f"{tmp_path}/.claude/agents/g5.md: field 'model'" in listed.stderr
    assert listed.stderr.count("WebFetch") == 1  # the unknown-tool warning, once


def test_an_unknown_section_or_key_names_the_nearest(tmp_path):
    (tmp_path / "flotilla.toml").write_text("[rcae]\nparallel = 2\n")
    done = flotilla(tmp_path, "agents")
    assert done.returncode == 2 and "rcae: unknown section" in done.stderr and "did you mean 'race'?" in done.stderr
    (tmp_path / "flotilla.toml").write_text("[race]\nparalel = 2\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    done = flotilla(tmp_path, "race", "x", "--agent", "cmd:true", "--check", "true")
    assert done.returncode == 2 and "race.paralel" in done.stderr and "did you mean 'parallel'?" in done.stderr


def test_help_shows_where_defaults_come_from_and_their_values(tmp_path):
    worker = flotilla(tmp_path, "worker", "--help", COLUMNS="200").stdout  # Typer boxes its help
    assert "[worker] concurrency in flotilla.toml, else 2" in worker and "[worker] remote" in worker
    assert "[worker] dead_after_s in flotilla.toml, else 15.0" in worker
    gateway = flotilla(tmp_path, "gateway", "--help", COLUMNS="200").stdout
    assert "[gateway] host in flotilla.toml, else 127.0.0.1" in gateway and "else 8788" in gateway
    assert "[worker] remote" in flotilla(tmp_path, "race", "--help", COLUMNS="200").stdout


def test_a_model_with_no_price_costs_unknown_not_zero(tmp_path, fake_provider):
    fp = fake_provider({"x": [{"text": "hello from lab"}]})
    (tmp_path / "flotilla.toml").write_text(f'[providers.lab]\nkind = "openai"\nbase_url = "{fp.url}/v1"\n')
    done = flotilla(tmp_path, "run", "general-purpose", "say hello", "-m", "lab:x", "--no-durable")
    assert done.returncode == 0, done.stderr
    summary = row(done.stderr, "end_turn")
    assert summary.endswith("· —") and "$0.0000" not in summary
    run_id = summary.split("run ")[1].split()[0]
    assert row(flotilla(tmp_path, "runs").stdout, run_id).split()[4] == "—"
    shown = flotilla(tmp_path, "show", run_id).stdout
    assert "total — across 1 run(s)" in shown and "$0.0000" not in shown
