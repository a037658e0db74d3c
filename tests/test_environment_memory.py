"""Project memory (CLAUDE.md, AGENTS.md, imports) in the system prompt the provider receives, subagents included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flotilla.agents import run_agent
from flotilla.agents.memory import MAX_IMPORT_DEPTH, load_memory
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call

from test_runtime_support import run, settings_for, spec


def _project(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def test_claude_md_its_import_agents_md_and_the_users_file_reach_the_provider(
        tmp_path: Path, fake_provider, claude_home: Path) -> None:
    root = _project(tmp_path / "repo")
    _write(claude_home / "CLAUDE.md", "USER-PREFERENCE: answer tersely.\n")
    _write(root / "CLAUDE.md", "ROOT-RULE: run make test.\nSee @docs/style.md for style.\n"
                               "```\n@docs/not-imported.md\n```\nAnd `@docs/not-imported.md` in a span.\n")
    _write(root / "docs" / "style.md", "STYLE-RULE: four spaces.\n")
    _write(root / "docs" / "not-imported.md", "NEVER-SEEN\n")
    _write(root / "AGENTS.md", "AGENTS-RULE: keep commits small.\n")
    _write(root / "pkg" / "CLAUDE.md", "PKG-RULE: this package is pure.\n")
    _write(root / "CLAUDE.local.md", "LOCAL-RULE: my sandbox is at 127.0.0.1:9.\n")
    workspace = root / "pkg"
    fp = fake_provider({"m": [{"text": "ok"}]})
    settings = settings_for(root, providers={"fake": {"kind": "anthropic", "base_url": fp.url}})
    result = await run_agent(spec(), "hello", workspace, model="fake:m", store=SQLiteStore(tmp_path / "s.db"),
                             settings=settings)

    assert result.stop_reason == "end_turn"
    system = fp.received[0].body["system"]
    system = system if isinstance(system, str) else "".join(b["text"] for b in system)
    assert system.startswith("You are worker.")
    order = [system.index(m) for m in ("USER-PREFERENCE", "ROOT-RULE", "STYLE-RULE", "AGENTS-RULE", "LOCAL-RULE",
                                       "PKG-RULE")]
    assert order == sorted(order), system
    assert "NEVER-SEEN" not in system
    for path in (claude_home / "CLAUDE.md", root / "CLAUDE.md", root / "docs" / "style.md", root / "AGENTS.md",
                 root / "pkg" / "CLAUDE.md"):
        assert f"Contents of {path.resolve()} (" in system
    assert f"(imported by {(root / 'CLAUDE.md').resolve()})" in system


def test_imports_stop_at_a_cycle_and_at_the_depth_limit(tmp_path: Path, claude_home: Path) -> None:
    root = _project(tmp_path)
    _write(root / "CLAUDE.md", "top @a.md\n")
    _write(root / "a.md", "A imports @b.md\n")
    _write(root / "b.md", "B imports @a.md and @CLAUDE.md again\n")  # a cycle back to both
    chain = [root / f"c{i}.md" for i in range(MAX_IMPORT_DEPTH + 2)]
    _write(root / "AGENTS.md", "@c0.md\n")
    for i, path in enumerate(chain):
        _write(path, f"chain {i} @c{i + 1}.md\n")
    memory = load_memory(root)
    paths = [f.path.name for f in memory.files]
    assert paths[:3] == ["CLAUDE.md", "a.md", "b.md"] and paths.count("a.md") == 1
    assert [p for p in paths if p.startswith("c")] == [f"c{i}.md" for i in range(MAX_IMPORT_DEPTH)]


def test_a_file_over_the_cap_is_cut_with_a_note(tmp_path: Path, claude_home: Path) -> None:
    root = _project(tmp_path)
    _write(root / "CLAUDE.md", "x" * 500 + "TAIL")
    memory = load_memory(root, settings_for(root, memory={"max_file_chars": 100}))
    prompt = memory.prompt()
    assert "TAIL" not in prompt and "x" * 100 in prompt and "x" * 101 not in prompt
    assert "CLAUDE.md was cut here: it has 504 characters and 100 fit under memory.max_file_chars" in prompt


def test_a_worktree_reads_its_own_copy_not_the_checkout_around_it(tmp_path: Path, claude_home: Path) -> None:
    root = _project(tmp_path / "main")
    _write(root / "CLAUDE.md", "MAIN-CHECKOUT\n")
    inner = _project(root / ".flotilla" / "worktrees" / "a1")
    _write(inner / "CLAUDE.md", "WORKTREE-COPY\n")
    prompt = load_memory(inner).prompt()
    assert "WORKTREE-COPY" in prompt and "MAIN-CHECKOUT" not in prompt


async def test_subagents_receive_the_memory_too(tmp_path: Path, claude_home: Path) -> None:
    root = _project(tmp_path)
    _write(root / "CLAUDE.md", "SHARED-MEMORY\n")
    model = ScriptedModel([tool_call("Agent", {"prompt": "look", "subagent_type": "helper"}),
                           reply("child done"), reply("parent done")], name="scripted:exec")
    result, _, _ = await run(spec(), "delegate", root, {"scripted:exec": model},
                             agents={"helper": spec("helper")})
    assert result.stop_reason == "end_turn"
    assert [("SHARED-MEMORY" in c.system, c.system.startswith("You are helper")) for c in model.calls] == [
        (True, False), (True, True), (True, False)]


def test_flotilla_memory_shows_what_an_agent_would_receive(tmp_path: Path, claude_home: Path) -> None:
    root = _project(tmp_path)
    _write(root / "CLAUDE.md", "Run the tests with make.\n@notes.md\n")
    _write(root / "notes.md", "NOTES\n")
    done = subprocess.run([sys.executable, "-m", "flotilla.cli", "memory", "--cwd", str(root)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"Contents of {(root / 'notes.md').resolve()} (imported by" in done.stdout
    assert "Run the tests with make." in done.stdout and "NOTES" in done.stdout
    assert "notes.md" in done.stderr and "characters" in done.stderr
