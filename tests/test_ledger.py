"""The long-horizon ledger: scripted initializer and workers, real git, real checks, the real loop and tools.

flotilla, not the model, decides what passes: each test looks at the repository's ``main`` and the
store's record, never at what a model said."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flotilla import Session
from flotilla.config import load_settings
from flotilla.demo_ledger import (CALC, DEMO_SESSIONS, FEATURES, GOAL, by_session, calc_with, cheat_write,
                                  initializer_steps, make_repo, session_steps, verify)
from flotilla.errors import UserError
from flotilla.patterns import _ledger_files as files
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_session(repo: Path, sessions: dict[int, list[Any]] | Any = None, init: list[Any] | None = None,
                 initializer: ScriptedModel | None = None) -> Session:
    settings = load_settings(cwd=repo, environ={}, user_file=repo / "no-user-config.toml")
    models = {"scripted:init": initializer or (lambda: ScriptedModel(list(init or initializer_steps()),
                                                                     name="scripted:init")),
              "scripted:workers": sessions if hasattr(sessions, "request") else by_session(sessions or {})}
    return Session(project=repo, durable=False, store=SQLiteStore(repo.parent / "store.db"), settings=settings,
                   models=models, home=repo / "no-home")


def initialized(tmp_path: Path, sessions: dict[int, list[Any]] | Any) -> tuple[Path, Session]:
    """A planned ledger; ``sessions`` are the workers' scripts by session number (or their model)."""
    repo = make_repo(tmp_path / "calc")
    s = make_session(repo, sessions)
    assert s.ledger_sync("init", GOAL, model="scripted:init")["status"] == "done"
    return repo, s


def work(s: Session, **options: Any) -> dict[str, Any]:
    return s.ledger_sync("work", model="scripted:workers", **options)


def on_main(repo: Path) -> list[dict[str, Any]]:
    return json.loads(sh(repo, "git", "show", "main:features.json"))


def record(s: Session) -> dict[str, Any]:
    return s.ledger_sync("status")


def clean(repo: Path) -> None:
    """No worktree and no flotilla branch left behind, nothing uncommitted on main."""
    assert sh(repo, "git", "worktree", "list").count("\n") == 0
    assert sh(repo, "git", "branch", "--list", "flotilla/*") == ""
    assert sh(repo, "git", "status", "--porcelain") == ""


def test_init_plans_commits_and_hashes_without_building(tmp_path):
    repo = make_repo(tmp_path / "calc")
    bad = [{**FEATURES[0]}, {**FEATURES[0], "verify": ""}]
    noop = {"id": "noop", "name": "nothing", "description": "already true", "verify": "true"}
    init = [tool_call("submit_features", {"features": bad}), *initializer_steps([*FEATURES, noop])]
    s = make_session(repo, init=init)
    result = s.ledger_sync("init", GOAL, model="scripted:init")

    assert result["status"] == "done" and result["smoke"] == "sh init.sh" and result["smoke_passed"]
    assert result["flagged"] == ["noop"]  # its verify passes before any work
    assert [f["id"] for f in on_main(repo)] == ["add", "sub", "mul", "noop"]
    assert not any(f["passes"] for f in on_main(repo))
    progress = sh(repo, "git", "show", "main:PROGRESS.md")
    assert GOAL in progress and "- [ ] `add` calc.add" in progress and "proves nothing" in progress
    assert "Implement `add`" in progress
    assert (repo / "calc.py").read_text() == CALC and (repo / "init.sh").is_file()  # scaffolded, nothing built
    meta = s.store.get_run(result["ledger_id"])["meta"]
    assert meta["hashes"]["add"] == files.identity_hash(FEATURES[0])
    clean(repo)
    with pytest.raises(UserError, match="has a ledger already"):
        s.ledger_sync("init", GOAL, model="scripted:init")


def test_init_refuses_an_invalid_feature_list_with_the_errors(tmp_path):
    repo = make_repo(tmp_path / "calc")
    dup = [FEATURES[0], {**FEATURES[0], "verify": ""}]
    model = ScriptedModel([tool_call("submit_features", {"features": dup, "smoke": "sh init.sh"})] * 3, name="scripted:init")
    s = make_session(repo, initializer=model)
    result = s.ledger_sync("init", GOAL, model="scripted:init")
    assert result["status"] == "failed" and "no valid feature list" in result["reason"]
    said = model.calls[1].messages[-1].model_dump_json()
    assert "used twice" in said and "`verify` must be a non-empty string" in said
    with pytest.raises(UserError, match="no ledger yet"):
        work(make_session(repo))
    clean(repo)


def test_a_worker_session_end_to_end_in_a_fresh_context(tmp_path):
    workers = by_session({1: DEMO_SESSIONS[1]})
    repo, s = initialized(tmp_path, workers)
    result = work(s)

    [row] = result["sessions"]
    assert row["passed"] and row["progress"] and row["smoke_before"] and result["stop"].startswith("1 session")
    assert [f["passes"] for f in on_main(repo)] == [True, False, False]
    assert "def add" in sh(repo, "git", "show", "main:calc.py")
    progress = (repo / "PROGRESS.md").read_text()
    assert "- [x] `add`" in progress and "session 1: `add` passes" in progress and "Implement `sub`" in progress
    first = workers.calls[0]
    assert len(first.messages) == 1 and "You are session 1" in first.messages[0].content  # nothing before it
    assert "planned three features" not in json.dumps([m.model_dump(mode="json") for m in first.messages])
    status = record(s)
    assert status["sessions"] == 1 and status["cost_usd"] > 0
    assert status["table"].splitlines()[1].split()[:3] == ["add", "yes", "1"]
    clean(repo)

    added = s.ledger_sync("add", "calc.div", verify=verify("add"), description="integer division")
    assert added["id"] == "calc-div" and [f["id"] for f in on_main(repo)][-1] == "calc-div"
    assert "proves nothing" in added["note"]  # its verify (add's) passes already
    assert "added by a person: `calc-div`" in (repo / "PROGRESS.md").read_text()
    with pytest.raises(UserError, match="used twice"):
        s.ledger_sync("add", "again", verify="true", feature_id="add")
    clean(repo)


def test_a_red_smoke_test_at_the_start_is_the_sessions_first_job(tmp_path):
    workers = by_session({1: session_steps(calc_with("add"), "fixed the syntax error, add works")})
    repo, s = initialized(tmp_path, workers)
    (repo / "calc.py").write_text("def broken(:\n")
    sh(repo, "git", "commit", "-qam", "a person breaks the build")
    [row] = work(s)["sessions"]
    assert not row["smoke_before"] and row["smoke_after"] and row["passed"]
    prompt = workers.calls[0].messages[0].content
    assert "It FAILS now: fixing it comes first" in prompt and "SyntaxError" in prompt


def test_a_model_claiming_success_while_the_verify_fails_stays_false(tmp_path):
    wrong = session_steps(calc_with("add", add="a - b"), "add is done and works perfectly.")
    workers = by_session({1: wrong, 2: DEMO_SESSIONS[1]})
    repo, s = initialized(tmp_path, workers)
    [row] = work(s)["sessions"]
    assert not row["passed"] and not row["progress"] and not row["verify"] and row["smoke_after"]
    [add, *_] = record(s)["features"]
    assert add["passes"] is False and "verify" in add["last_failure"] and add["sessions"] == 1
    assert not on_main(repo)[0]["passes"] and "Last attempt failed" in (repo / "PROGRESS.md").read_text()

    [row] = work(s)["sessions"]  # the next session is told why the last one failed
    assert row["passed"] and "The last attempt failed" in workers.calls[-1].messages[0].content


def test_edits_to_features_json_by_write_sed_and_commit_are_refused_or_reverted_and_reported(tmp_path):
    sed = tool_call("Bash", {"command": "sed -i 's/returns a + b/returns whatever/; s/\"passes\": false/\"passes\": true/' "
                                        "features.json && git commit -qam 'mark everything done'"})
    tamper = [tool_call("Read", {"file_path": "PROGRESS.md"}), cheat_write(), sed, reply("All features are done.")]
    repo, s = initialized(tmp_path, {1: tamper, 2: DEMO_SESSIONS[1]})
    [row] = work(s)["sessions"]

    assert any("Edit(./features.json)" in d for d in row["denials"])  # Write: refused by the runtime's rule
    assert "feature 'add' was reworded (description)" in row["tampered"]  # sed, then a commit: reverted
    assert any("`passes` was set to True" in t for t in row["tampered"])
    assert not row["passed"] and not any(f["passes"] for f in on_main(repo))
    ledger = s.store.get_run(record(s)["ledger_id"])["meta"]
    assert sh(repo, "git", "show", "main:features.json") + "\n" == files.features_json(ledger["features"])
    assert "the agent changed features.json, reverted" in (repo / "PROGRESS.md").read_text()

    reworded = [{**f, "verify": "true"} if f["id"] == "add" else f for f in on_main(repo)]
    (repo / "features.json").write_text(json.dumps(reworded))
    sh(repo, "git", "commit", "-qam", "a person makes add easy")
    [row] = work(s)["sessions"]
    assert row["reverted_before"] == ["feature 'add' was reworded (verify)"] and row["passed"]
    assert on_main(repo)[0]["verify"] == verify("add")  # the recorded verify, back on main
    clean(repo)


def test_work_refuses_while_another_work_run_is_recorded_as_running(tmp_path):
    repo, s = initialized(tmp_path, {})
    ledger_id = record(s)["ledger_id"]
    s.store.create_run("ledger-work", "crashed", parent_id=ledger_id, run_id="crashedrun")
    with pytest.raises(UserError, match="flotilla resume crashedrun"):
        work(s)


def test_work_the_base_does_not_take_stays_on_its_branch_and_changes_nothing(tmp_path):
    def meddle(request):  # a person edits main while the session works: the merge is refused
        (repo / "README.md").write_text("# calc, edited\n")
        return reply("add is implemented.")

    repo, s = initialized(tmp_path, {1: [tool_call("Write", {"file_path": "calc.py", "content": calc_with("add")}),
                                         meddle]})
    [row] = work(s)["sessions"]
    assert row["merge_error"] and "uncommitted" in row["merge_error"] and not row["passed"] and not row["progress"]
    assert not any(f["passes"] for f in record(s)["features"]) and not on_main(repo)[0]["passes"]
    assert sh(repo, "git", "worktree", "list").count("\n") == 0
    branch = sh(repo, "git", "branch", "--list", "flotilla/*").strip()
    assert "def add" in sh(repo, "git", "show", f"{branch}:calc.py")


def test_a_regression_is_flipped_back_with_a_note(tmp_path):
    breaks_add = session_steps(calc_with("add", "sub", add="a * b"), "sub is implemented.")
    repo, s = initialized(tmp_path, {1: DEMO_SESSIONS[1], 2: breaks_add})
    rows = work(s, sessions=2)["sessions"]
    assert [r["passed"] for r in rows] == [True, True] and rows[1]["regressed"] == ["add"]
    add, sub, _ = record(s)["features"]
    assert (add["passes"], add["note"], sub["passes"]) == (False, "regressed in session 2", True)
    assert [f["passes"] for f in on_main(repo)] == [False, True, False]
    assert "(regressed in session 2)" in (repo / "PROGRESS.md").read_text()


def test_until_done_stops_after_sessions_in_a_row_without_progress(tmp_path):
    idle = [reply("I looked around; nothing to do.")]
    repo, s = initialized(tmp_path, {1: idle, 2: idle, 3: idle})
    result = work(s, until_done=True, max_dry=2)
    assert result["stop"] == "no progress in 2 sessions in a row" and len(result["sessions"]) == 2
    assert record(s)["sessions"] == 2 and s.store.get_run(result["work_id"])["status"] == "limited"
    clean(repo)


def test_until_done_stops_when_the_budget_is_spent(tmp_path):
    repo, s = initialized(tmp_path, DEMO_SESSIONS)
    result = work(s, until_done=True, budget_usd=0.012)
    assert "budget" in result["stop"] and not result["all_pass"]
    assert result["cost_usd"] <= 0.012  # the meter refused the call that would have gone over
    clean(repo)


def test_the_offline_demo_builds_three_features_in_three_sessions_and_refuses_the_cheat():
    import io

    from rich.console import Console

    from flotilla.demo_ledger import run_ledger_demo

    printed = io.StringIO()
    assert run_ledger_demo(Console(file=printed, width=200)) == 0
    said = printed.getvalue()
    assert "session 3: mul passes" in said and "refused: Write was refused by the permission rule" in said
