"""A race attempt sees the environment of its own worktree: memory, skills, permission rules and MCP servers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flotilla.config import load_settings
from flotilla.messages import MessagesRequest, MessagesResponse
from flotilla import Session
from flotilla.patterns.race import RaceConfig, build_plans
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call, tool_calls
from test_race_support import CHECK, make_repo, sh


async def test_an_attempt_reads_its_worktrees_copy_of_the_environment(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    (repo / "CLAUDE.md").write_text("RACE-MEMORY: calc.py must stay tiny.\n")
    (repo / ".claude" / "skills" / "arith").mkdir(parents=True)
    (repo / ".claude" / "skills" / "arith" / "SKILL.md").write_text(
        "---\ndescription: Arithmetic fixes\n---\nARITH-BODY\n")
    (repo / ".claude" / "settings.json").write_text(json.dumps({"permissions": {"deny": ["Bash(rm:*)"]}}))
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"time": {
        "command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}}}))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "environment")
    seen: list[MessagesRequest] = []

    def record(response):
        def step(request: MessagesRequest) -> MessagesResponse:
            seen.append(request)
            return response
        return step

    script = [record(tool_calls(("Bash", {"command": "rm calc.py"}),
                                ("mcp__time__convert_time", {"source_timezone": "UTC", "time": "12:00",
                                                             "target_timezone": "Asia/Tokyo"}))),
              record(tool_call("Edit", {"file_path": "calc.py", "old_string": "a - b", "new_string": "a + b"})),
              record(reply("fixed"))]
    plans = build_plans(["scripted:fix"], agent="general-purpose", config=RaceConfig())
    async with Session(project=repo, durable=False, store=SQLiteStore(tmp_path / "store.db"),
                       settings=load_settings(cwd=repo),
                       models={"scripted:fix": lambda: ScriptedModel(list(script), name="scripted:fix")}) as session:
        outcome = await session.race("Fix add", check=CHECK, plans=plans)

    assert outcome.winner is not None and outcome.merged, [(a.name, a.reason, a.error) for a in outcome.attempts]
    first = seen[0]
    worktree = Path(first.system.split("You are working in the directory ", 1)[1].split(";")[0])
    assert worktree != repo and ".flotilla" in worktree.parts
    assert f"Contents of {worktree / 'CLAUDE.md'} (" in first.system and "RACE-MEMORY" in first.system
    assert f"Contents of {repo / 'CLAUDE.md'} (" not in first.system
    assert "- arith: Arithmetic fixes" in first.system
    denied, converted = [b for b in seen[1].messages[-1].blocks()]
    assert denied.is_error and "Bash(rm:*)" in denied.text()
    assert "+09:00" in converted.text()
    assert (repo / "calc.py").exists() and "a + b" in (repo / "calc.py").read_text()
