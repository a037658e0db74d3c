"""The default role pipeline on real git with one scripted model per role: the read-only architect, the
plan, parallel implementers merged, the test writer, the security reviewer's findings back to the
implementers; a rejection at the gate; bad pipeline files."""

from __future__ import annotations

import asyncio

import pytest

from flotilla.errors import UserError
from pipeline_support import PLAN, SUB, roles, session, stage_models
from test_race_support import branches, make_repo, sh, worktrees


async def test_the_default_pipeline_end_to_end(tmp_path):
    repo = make_repo(tmp_path / "r")
    head = sh(repo, "git", "rev-parse", "HEAD")
    scripts = roles()
    s, models = session(repo, scripts)
    async with s:
        result = await s.pipeline("Fix add and add a page", models=stage_models(scripts), yes=True)
    assert result["status"] == "done", result["reason"]
    branch = result["branch"]
    # the architect was read-only: its write was refused, its plan is PLAN.md on the branch, stored with its hash
    assert not (repo / "hack.txt").exists() and "hack.txt" not in sh(repo, "git", "ls-tree", "-r", "--name-only", branch)
    assert "Write" not in {t.name for t in models["architect"].calls[0].tools}
    assert sh(repo, "git", "show", f"{branch}:PLAN.md") == PLAN["plan"]
    assert result["plan"]["files"] == sorted(PLAN["files"]) and len(result["plan"]["sha256"]) == 64
    # backend ∥ frontend: each on its own branch, merged into the pipeline branch; then the test writer
    rows = {r["stage"]: r for r in result["stages"]}
    assert [r["stage"] for r in result["stages"]] == ["backend", "frontend", "test-writer"]
    assert rows["backend"]["status"] == rows["frontend"]["status"] == "merged" and rows["test-writer"]["status"] == "done"
    assert sh(repo, "git", "show", f"{branch}:ui.html") == "<p>calc</p>"
    # the implementers got the plan and the task, never a transcript; the test writer the summaries
    backend_prompt = str(models["backend"].calls[0].messages[0].content)
    assert "The approved plan" in backend_prompt and "fix add in calc.py" in backend_prompt
    assert "hack.txt" not in backend_prompt
    assert "backend: fixed add" in str(models["test-writer"].calls[0].messages[0].content)
    # a stage outside the plan is flagged
    assert rows["test-writer"]["outside_plan"] == ["extra.py"]
    assert any("outside the approved plan (test-writer): extra.py" in n for n in result["notes"])
    # the security reviewer's finding went back to the implementers, then it was clean
    loop = result["review"]
    assert loop["ended"] == "clean" and [f["status"] for f in loop["findings"]] == ["fixed"]
    assert "branch" in str(models["backend"].calls[2].messages[0].content)
    assert sh(repo, "git", "show", f"{branch}:calc.py") == SUB.strip()
    for m in models.values():
        m.assert_consumed()
    # nothing merged; worktrees gone, the pipeline branch kept
    assert sh(repo, "git", "rev-parse", "HEAD") == head and worktrees(repo) == [str(repo)]
    assert [b for b in branches(repo) if b.startswith("flotilla/")] == [branch]


async def test_a_rejection_at_the_gate_ends_the_pipeline_before_any_implementer(tmp_path):
    repo = make_repo(tmp_path / "r")
    scripts = roles()
    s, models = session(repo, scripts)
    async with s:
        running = asyncio.create_task(s.pipeline("Fix add", models=stage_models(scripts)))
        while s.store.list_runs(kind="pipeline") == [] or \
                s.store.list_runs(kind="pipeline")[0]["meta"].get("state") != "awaiting approval":
            await asyncio.sleep(0.05)
        (run,) = s.store.list_runs(kind="pipeline")
        assert run["meta"]["gate"] == "architect" and run["meta"]["plan"]["files"] == sorted(PLAN["files"])
        s.reject(run["id"], "use a dict, not a branch")
        result = await running
    assert result["status"] == "rejected" and "use a dict, not a branch" in result["reason"]
    assert models["backend"].calls == [] and result["stages"] == []
    with pytest.raises(UserError, match="not waiting for approval"):
        s.approve(run["id"])


def test_bad_pipeline_files_are_named(tmp_path):
    repo = make_repo(tmp_path / "r")
    folder = repo / ".flotilla" / "pipelines"
    folder.mkdir(parents=True)
    s, _ = session(repo, {})
    cases = {"typo": ('[[stage]]\nname = "a"\nagent = "architect"\nkind = "plna"\n', "stage.0.kind"),
             "fix": ('[[stage]]\nname = "r"\nagent = "reviewer"\nkind = "review"\nfix = ["x"]\n', "not an earlier work"),
             "agent": ('[[stage]]\nname = "a"\nagent = "nobody"\n', "no agent named 'nobody'"),
             "broken": ('[[stage\n', "not valid TOML")}
    for name, (text, said) in cases.items():
        (folder / f"{name}.toml").write_text(text)
        with pytest.raises(UserError, match=said):
            from flotilla.patterns.pipeline import begin

            begin(s, "x", name=name, allow_dirty=True)
    with pytest.raises(UserError, match="no pipeline named 'nope'"):
        begin(s, "x", name="nope")


async def test_parallel_implementers_that_conflict_are_reported_and_the_work_kept(tmp_path):
    from pipeline_support import write

    repo = make_repo(tmp_path / "r")
    scripts = roles(frontend=write("def add(a, b):\n    return b + a\n", summary="also fixed add"))
    s, models = session(repo, scripts)
    async with s:
        result = await s.pipeline("Fix add", models=stage_models(scripts), yes=True)
    rows = {r["stage"]: r for r in result["stages"]}
    assert rows["backend"]["status"] == "merged" and rows["frontend"]["status"] == "conflict"
    assert "calc.py" in rows["frontend"]["merge_reason"]
    assert result["status"] == "failed" and "frontend" in result["reason"]
    frontend = f"flotilla/{result['pipeline_id']}/frontend"
    assert frontend in branches(repo) and any(frontend in n for n in result["notes"])
    assert models["test-writer"].calls == [] and worktrees(repo) == [str(repo)]


async def test_two_gates_each_wait_for_their_own_answer(tmp_path):
    from pipeline_support import write

    repo = make_repo(tmp_path / "r")
    folder = repo / ".flotilla" / "pipelines"
    folder.mkdir(parents=True)
    (folder / "twice.toml").write_text('[[stage]]\nname = "architect"\nagent = "architect"\nkind = "plan"\ngate = true\n\n'
                                       '[[stage]]\nname = "backend"\nagent = "implementer"\ngate = true\n\n'
                                       '[[stage]]\nname = "frontend"\nagent = "implementer"\n')
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "a pipeline")
    scripts = roles(backend=write("x = 1\n", path="calc.py"), frontend=write("<p/>\n", path="ui.html"))
    s, models = session(repo, {k: scripts[k] for k in ("architect", "backend", "frontend")})
    async with s:
        running = asyncio.create_task(s.pipeline("Fix add", name="twice", models=stage_models(models)))

        async def at(gate):
            while not any(r["meta"].get("gate") == gate for r in s.store.list_runs(kind="pipeline")):
                await asyncio.sleep(0.02)
            return s.store.list_runs(kind="pipeline")[0]["id"]

        s.approve(await at("architect"), "plan ok")
        run_id = await at("backend")
        assert models["frontend"].calls == []  # the first answer did not open the second gate
        s.approve(run_id, "backend ok")
        result = await running
    assert result["status"] == "done"
    assert [(a["after"], a["note"]) for a in result["approvals"]] == [("architect", "plan ok"), ("backend", "backend ok")]
    assert "backend ok" in str(models["frontend"].calls[0].messages[0].content)
