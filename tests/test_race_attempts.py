"""Races on real git repositories with scripted models and a fake external CLI."""

from __future__ import annotations

import sys

import pytest

from flotilla.config import load_settings
from flotilla.errors import RepositoryError, UserError
from flotilla import Session
from flotilla.patterns.race import RaceConfig, build_plans
from flotilla.store import SQLiteStore
from flotilla.testing import ScriptedModel, reply, tool_call
from test_race_support import CHECK, branches, make_repo, sh, worktrees

FIX = [tool_call("Read", {"file_path": "calc.py"}),
       tool_call("Edit", {"file_path": "calc.py", "old_string": "a - b", "new_string": "a + b"}),
       tool_call("Bash", {"command": CHECK}),
       reply("Fixed add: it subtracted.")]
WRONG = [tool_call("Edit", {"file_path": "calc.py", "old_string": "a - b", "new_string": "a * b"}),
         reply("Done.")]
BIG_FIX = [tool_call("Write", {"file_path": "calc.py", "content": "# adds\n\n\ndef add(a, b):\n    total = a\n"
                                                                  "    total += b\n    return total\n"}),
           reply("Rewrote add.")]


def named(scripts):
    """Each scripted model by name (``scripted:fix`` …), made fresh for each attempt; an exception in
    place of steps is what making that model raises."""
    def make(name, steps):
        if isinstance(steps, Exception):
            raise steps
        return ScriptedModel(list(steps), name=name)
    return {f"scripted:{key}": (lambda key=key, steps=steps: make(f"scripted:{key}", steps))
            for key, steps in scripts.items()}


def options(spec="Fix add so the test passes", models=("scripted:fix",), **kw):
    plans = build_plans(list(models), agent=kw.pop("agent", "implementer"), config=kw.pop("config", RaceConfig()))
    return dict(spec=spec, check=kw.pop("check", CHECK), plans=plans, **kw)


async def race(repo, opts, scripts, store=None, settings=None, models=None):
    store = store or SQLiteStore(repo.parent / "store.db")
    async with Session(project=repo, durable=False, store=store, settings=settings,
                       models=models or named(scripts)) as session:
        return await session.race(**opts), store


async def test_parallel_attempts_rank_merge_winner_and_clean_up_losers(tmp_path):
    repo = make_repo(tmp_path / "r")
    opts = options(models=("scripted:big", "scripted:wrong", "scripted:fix"))
    outcome, store = await race(repo, opts, {"fix": FIX, "wrong": WRONG, "big": BIG_FIX})
    names = [a.name for a in outcome.attempts]
    assert names == ["a3", "a1", "a2"], [(a.name, a.reason) for a in outcome.attempts]
    assert outcome.winner.name == "a3" and outcome.status == "done"
    assert "smaller diff" in outcome.attempts[0].reason and "check failed" in outcome.attempts[2].reason
    assert outcome.merged and "return a + b" in (repo / "calc.py").read_text()
    assert sh(repo, "git", "log", "-1", "--format=%s").startswith(f"flotilla race {outcome.race_id}")
    # losers' and the merged winner's branches and every worktree are gone
    assert [b for b in branches(repo) if b.startswith("flotilla/")] == []
    assert worktrees(repo) == [str(repo)]
    assert "+    return a + b" in outcome.winner_diff
    # the store has the race, its attempt runs, and the events
    run = store.get_run(outcome.race_id)
    assert run["status"] == "done" and run["result"]["winner"] == "a3"
    children = store.list_runs(parent_id=outcome.race_id)
    assert {c["id"] for c in children} == {a.run_id for a in outcome.attempts}
    kinds = [e["event"] for e in store.events(outcome.race_id)]
    assert kinds.count("AttemptStarted") == 3 and kinds.count("AttemptFinished") == 3
    assert kinds.count("CheckRan") == 3
    # attempts overlapped in time
    starts = sorted(a.started_at for a in outcome.attempts)
    ends = sorted(a.started_at + a.seconds for a in outcome.attempts)
    assert starts[-1] < ends[0]


async def test_a_failing_check_is_never_merged(tmp_path):
    repo = make_repo(tmp_path / "r")
    head = sh(repo, "git", "rev-parse", "HEAD")
    outcome, store = await race(repo, options(models=("scripted:wrong",)), {"wrong": WRONG})
    assert outcome.winner is None and outcome.merged is None and outcome.status == "failed"
    assert sh(repo, "git", "rev-parse", "HEAD") == head
    assert store.get_run(outcome.race_id)["reason"] == "no attempt passed its check"
    assert any("nothing was merged" in n for n in outcome.notes)
    # the best attempt's branch is kept to look at
    assert branches(repo) == ["flotilla/%s/a1" % outcome.race_id, "main"]


async def test_a_crashing_attempt_does_not_stop_the_others(tmp_path):
    repo = make_repo(tmp_path / "r")
    scripts = {"fix": FIX, "crash": RuntimeError("the model factory blew up"),
               "short": [tool_call("Read", {"file_path": "calc.py"})]}  # runs out of script: ScriptError
    outcome, _ = await race(repo, options(models=("scripted:crash", "scripted:fix", "scripted:short")), scripts)
    by = {a.name: a for a in outcome.attempts}
    assert by["a1"].status == "failed" and "blew up" in by["a1"].error
    assert by["a3"].status == "failed"
    assert outcome.winner is by["a2"] and outcome.merged


async def test_judge_scores_decide_between_passing_attempts_and_bad_json_is_no_score(tmp_path):
    repo = make_repo(tmp_path / "r")
    judge_steps = [reply('{"score": 9, "reasons": "clean"}'), reply("I like it a lot"), reply("still not json")]
    scripts = {"fix": FIX, "big": BIG_FIX, "judge": judge_steps}

    shared = ScriptedModel(judge_steps, name="scripted:judge")
    opts = options(models=("scripted:big", "scripted:fix"), judge="scripted:judge", pick="manual")
    outcome, _ = await race(repo, opts, {}, store=SQLiteStore(":memory:"),
                            models={**named(scripts), "scripted:judge": shared})
    scores = sorted((a.judge_score is None, a.judge_score) for a in outcome.attempts)
    assert scores == [(False, 9.0), (True, None)]
    assert outcome.attempts[0].judge_score == 9.0 and "judge scored it 9" in outcome.attempts[0].reason
    loser = outcome.attempts[1]
    assert "no score" in loser.judge_reasons
    # pick manual: nothing merged, the winner's branch is there for `flotilla merge`
    assert outcome.merged is None and outcome.winner.branch in branches(repo)


async def test_external_agent_through_a_fake_cli(tmp_path):
    repo = make_repo(tmp_path / "r")
    cli = tmp_path / "fake-agent"
    cli.write_text(f"#!{sys.executable}\nimport sys, pathlib\n"
                   "spec, model = sys.argv[1], sys.argv[2]\n"
                   "assert 'Fix add' in spec, spec\n"
                   "p = pathlib.Path('calc.py'); p.write_text(p.read_text().replace('a - b', 'a + b'))\n"
                   "pathlib.Path('NOTES.md').write_text(f'model={model}\\n')\n"
                   "print('fake agent done')\n")
    cli.chmod(0o755)
    config = RaceConfig(agents={"fake": f"{cli} {{spec}} {{model}}"})
    opts = options(models=("m1", "m2"), agent="fake", config=config, parallel=1)
    outcome, store = await race(repo, opts, {})
    assert outcome.winner is not None and all(a.status == "done" and a.passed for a in outcome.attempts)
    assert outcome.attempts[0].output_tail.strip() == "fake agent done"
    assert (repo / "NOTES.md").read_text() in ("model=m1\n", "model=m2\n")
    child = store.get_run(outcome.attempts[0].run_id)
    assert child["kind"] == "attempt" and child["parent_id"] == outcome.race_id and child["status"] == "done"
    # parallel=1: one after the other
    first, second = sorted(outcome.attempts, key=lambda a: a.started_at)
    assert first.started_at + first.seconds <= second.started_at + 0.05


async def test_external_agent_failure_and_inline_cmd(tmp_path):
    repo = make_repo(tmp_path / "r")
    opts = options(models=(), agent="cmd:echo nope; exit 3")
    outcome, _ = await race(repo, opts, {})
    (attempt,) = outcome.attempts
    assert attempt.status == "failed" and "exited 3" in attempt.error and "nope" in attempt.error
    assert outcome.winner is None


async def test_refusals_before_anything_starts(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / "calc.py").write_text("dirty\n")
    store = SQLiteStore(":memory:")
    with pytest.raises(RepositoryError, match="uncommitted changes"):
        await race(repo, options(), {"fix": FIX}, store=store)
    assert store.list_runs() == []
    with pytest.raises(UserError, match="needs a check"):
        await race(repo, {**options(), "check": " "}, {}, store=store)
    with pytest.raises(RepositoryError, match="not a git repository"):
        await race(tmp_path / "r" / ".." / "..", options(), {}, store=store)


async def test_allow_dirty_races_from_head(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / "test_calc.py").write_text("dirty, not raced\n")
    outcome, _ = await race(repo, options(allow_dirty=True, pick="manual"), {"fix": FIX})
    assert outcome.winner is not None  # the worktree had HEAD's test, not the dirty one


async def test_budget_stops_the_race(tmp_path):
    repo = make_repo(tmp_path / "r")
    config = RaceConfig()
    plans = build_plans(["scripted:slow1", "scripted:slow2"], config=config)
    settings = load_settings(cwd=repo, flags={"models": {"scripted:slow1": {"input": 1000.0},
                                                         "scripted:slow2": {"input": 1000.0}}})
    steps = [tool_call("Bash", {"command": "sleep 0.2"})] * 20 + [reply("done")]
    opts = dict(spec="Fix add", check=CHECK, plans=plans, budget_usd=0.5)
    outcome, _ = await race(repo, opts, {"slow1": steps, "slow2": steps}, store=SQLiteStore(":memory:"),
                            settings=settings)
    assert all(a.status == "budget" for a in outcome.attempts), [(a.status, a.error) for a in outcome.attempts]
    assert outcome.winner is None and any("budget" in n for n in outcome.notes)
    assert sum(a.cost_usd for a in outcome.attempts) < 3


def test_build_plans_repeats_each_model():
    plans = build_plans(["x:a", "x:b"], n=2, config=RaceConfig())
    assert [(p.name, p.model) for p in plans] == [("a1", "x:a"), ("a2", "x:a"), ("a3", "x:b"), ("a4", "x:b")]
    with pytest.raises(UserError):
        build_plans(["x:a"], n=0, config=RaceConfig())


async def test_setup_command_and_worktreeinclude_run_before_the_agent_and_keep_keeps_everything(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / ".gitignore").write_text("__pycache__/\n.env\n*.log\n")
    (repo / ".worktreeinclude").write_text("# secrets the tests need\n.env\n")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "include")
    (repo / ".env").write_text("TOKEN=42\n")
    agent = ("cmd:grep -q TOKEN=42 setup.log && sed -i 's/a - b/a + b/' calc.py # {model}")
    opts = options(models=("m1", "m2"), agent=agent, setup="cat .env > setup.log", keep=True, pick="manual")
    outcome, _ = await race(repo, opts, {})
    assert all(a.passed for a in outcome.attempts), [a.error for a in outcome.attempts]
    assert len(worktrees(repo)) == 3
    assert len([b for b in branches(repo) if b.startswith("flotilla/")]) == 2
    # the copied .env and the setup's ignored output were never committed
    files = sh(repo, "git", "ls-tree", "-r", "--name-only", outcome.winner.branch).split()
    assert ".env" not in files and "setup.log" not in files
    failing = options(models=("m1",), agent=agent, setup="exit 4")
    broken, _ = await race(repo, failing, {})
    assert broken.attempts[0].status == "failed" and "setup command" in broken.attempts[0].error


async def test_an_agent_raced_without_a_model_runs_on_its_own_files_model(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / ".claude" / "agents").mkdir(parents=True)
    (repo / ".claude" / "agents" / "fixer.md").write_text(
        "---\nname: fixer\ndescription: fixes\nmodel: scripted:fix\n---\nFix what the spec says.\n")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "agent")
    outcome, _ = await race(repo, {"spec": "Fix add", "check": CHECK, "models": [], "agent": "fixer"},
                            {"fix": FIX})
    assert [(a.agent, a.model) for a in outcome.attempts] == [("fixer", "scripted:fix")]
    assert outcome.winner is not None and outcome.merged
