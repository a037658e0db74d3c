"""What a race says when something is wrong, through the real command: before anything exists, in full
when an attempt fails, and with an exit code that tells a script what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flotilla.store import SQLiteStore
from test_race_support import CHECK, branches, make_repo, sh, worktrees

FLOTILLA = [str(Path(sys.executable).parent / "flotilla")]
FIX = (f"cmd:{sys.executable} -c \"import pathlib; p = pathlib.Path('calc.py'); "
       "p.write_text(p.read_text().replace('a - b', 'a + b'))\"")


def flotilla(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run([*FLOTILLA, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**environ, "FLOTILLA_STORE": str(cwd.parent / "store.db"), **env})


def nothing_created(repo: Path) -> bool:
    store = repo.parent / "store.db"
    no_runs = not store.exists() or SQLiteStore(store).list_runs() == []
    return no_runs and worktrees(repo) == [str(repo)] and not [b for b in branches(repo) if "flotilla/" in b]


def test_preflight_names_every_problem_and_creates_nothing(tmp_path):
    repo = make_repo(tmp_path / "r")
    done = flotilla(repo, "race", "Fix add", "-m", "gpt5", "-m", "nosuch:x", "-m", "openai:gpt-5",
                    "--fallback-model", "haiku", "--judge", "opus", "--parallel", "0", "--check", CHECK)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    said = done.stderr
    assert "unknown model 'gpt5' (did you mean 'openai:gpt-5'?); known: haiku, opus, sonnet" in said
    assert "unknown provider 'nosuch'; known: anthropic" in said and "nosuch:x" in said  # not an emoji
    assert "set the environment variable OPENAI_API_KEY" in said and "ANTHROPIC_API_KEY" in said
    assert "--judge opus" in said and "--parallel must be at least 1 (got 0)" in said
    assert "estimate" not in said and nothing_created(repo)

    for agent, says in (("cmd:nosuch-agent-cli {spec}", "'nosuch-agent-cli' is not found on PATH"),
                        ("cmd:echo {nope}", "the placeholders are {spec}, {model}, {spec_file} and {workspace}"),
                        ("no-such-agent", "no such agent; flotilla agents: architect")):
        refused = flotilla(repo, "race", "Fix add", "--agent", agent, "--check", CHECK)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
    assert flotilla(repo, "race", "Fix add", "--agent", "cmd:true", "-n", "0", "--check", "true").returncode == 2
    (repo / ".claude" / "agents").mkdir(parents=True)
    (repo / ".claude" / "agents" / "fixer.md").write_text("---\nname: fixer\nfallbackModel: gpt5\n"
                                                          "advisor: nosuch:y\n---\nFix it.\n")
    own = flotilla(repo, "race", "Fix add", "--agent", "fixer", "-m", "scripted:echo", "--check", CHECK)
    assert own.returncode == 2 and "fixer.md: fallbackModel gpt5: unknown model 'gpt5'" in own.stderr
    assert "fixer.md: advisor nosuch:y: unknown provider 'nosuch'" in own.stderr
    (repo / ".claude" / "agents" / "bad.md").write_text("---\nname: bad\nmaxTurns: zero\n---\nx\n")
    bad = flotilla(repo, "race", "Fix add", "--agent", "bad", "-m", "scripted:echo", "--check", CHECK)
    assert bad.returncode == 2 and "bad.md: field 'maxTurns'" in bad.stderr and "no such agent" not in bad.stderr
    assert nothing_created(repo)


def test_a_failed_check_is_shown_in_full_without_colour_codes(tmp_path):
    repo = make_repo(tmp_path / "r")
    done = flotilla(repo, "race", "Fix add", "--agent", "cmd:true", "--check", "nosuchcmd", "--no-durable")
    assert done.returncode == 1
    assert "warning: --check 'nosuchcmd': 'nosuchcmd' is not found on PATH" in done.stderr
    assert "nosuchcmd: not found" in done.stdout  # under the table, not only in the store
    assert "estimate: 1 attempt, cost unknown: cmd:true reports no cost" in done.stderr
    row = next(line for line in done.stdout.splitlines() if " a1 " in line)
    assert "—" in row and "$0.0000" not in row  # an external agent's cost is unknown, not zero

    coloured = "cmd:printf '\\033[31mred failure\\033[0m' && exit 3"
    failed = flotilla(repo, "race", "Fix add", "--agent", coloured, "--check", "true", "--no-durable")
    assert failed.returncode == 1 and "red failure" in failed.stdout and "\x1b[" not in failed.stdout
    race = SQLiteStore(tmp_path / "store.db").list_runs(kind="race")[0]
    assert "\x1b" not in str(race["result"]) and "red failure" in race["result"]["attempts"][0]["error"]
    shown = flotilla(repo, "show", race["id"])
    assert "why they failed" in shown.stdout and "exited 3: red failure" in shown.stdout


def test_an_unpriced_model_reads_as_unknown_in_the_estimate(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / "flotilla.toml").write_text('[providers.lab]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "lab")
    done = flotilla(repo, "race", "Fix add", "-m", "lab:x", "-n", "3", "--check", "false", "--no-durable")
    line = next(line for line in done.stderr.splitlines() if line.startswith("estimate"))
    assert line == 'estimate: 3 attempts, cost unknown: lab:x has no price; set [models."lab:x"] in flotilla.toml'


def test_allow_dirty_that_cannot_merge_says_so_and_exits_1(tmp_path):
    repo = make_repo(tmp_path / "r")
    (repo / "test_calc.py").write_text((repo / "test_calc.py").read_text() + "# my change\n")
    done = flotilla(repo, "race", "Fix add", "--agent", FIX, "--check", CHECK, "--allow-dirty", "--no-durable")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not merged:" in done.stdout and "uncommitted changes" in done.stdout and "flotilla merge" in done.stdout
    assert "# my change" in (repo / "test_calc.py").read_text()  # the user's work is untouched


def test_ambiguous_prefix_resume_of_a_finished_run_and_reading_outside_a_project(tmp_path):
    repo = make_repo(tmp_path / "r")
    ids: list[str] = []
    while len({i[0] for i in ids}) == len(ids):  # until two ids share a first hex digit: 17 races at most
        done = flotilla(repo, "race", "Fix add", "--agent", "cmd:true", "--check", "false", "--no-durable")
        ids.append(next(line.split()[1].rstrip(":") for line in done.stderr.splitlines() if line.startswith("race ")))
    prefix = ids[-1][0]
    shown = flotilla(repo, "show", prefix)
    matching = [i for i in ids if i.startswith(prefix)]
    assert shown.returncode == 2 and f"run id {prefix!r} is ambiguous" in shown.stderr
    assert all(i in shown.stderr for i in matching)

    resumed = flotilla(repo, "resume", ids[0])
    assert resumed.returncode == 1 and f"run {ids[0]} is finished: failed" in resumed.stderr
    assert "nothing to resume" in resumed.stderr

    outside = tmp_path / "elsewhere" / "plain"
    outside.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "FLOTILLA_STORE"}
    for args in (["runs"], ["show", "abc"], ["resume", "abc"], ["merge", "abc"], ["approve", "abc"],
                 ["reject", "abc", "--reason", "no"], ["ledger", "status"]):
        looked = subprocess.run([*FLOTILLA, *args], cwd=outside, capture_output=True, text=True, env=env)
        assert looked.returncode in (0, 2) and "Traceback" not in looked.stderr
        assert "does not exist" in looked.stderr
    assert list(outside.iterdir()) == []  # reading created no .flotilla/flotilla.db


def test_queued_attempts_leave_keys_and_programs_to_the_workers(tmp_path):
    from flotilla.agents.loader import builtin_agents
    from flotilla.config import load_settings
    from flotilla.errors import UserError
    from flotilla.models.catalog import Catalog
    from flotilla.patterns._preflight import preflight
    from flotilla.patterns._race_plan import RaceConfig, build_plans

    settings = load_settings(cwd=tmp_path, environ={}, user_file=tmp_path / "none.toml")
    catalog, config = Catalog.load(), RaceConfig()
    plans = build_plans(["openai:gpt-5"], config=config) + build_plans([], agent="cmd:only-on-workers {spec}",
                                                                      config=config)
    agents = builtin_agents()
    assert preflight(plans, check="pytest", agents=agents, settings=settings, catalog=catalog, here=False,
                     environ={}) == []
    try:
        preflight(plans, check="pytest", agents=agents, settings=settings, catalog=catalog, environ={"PATH": ""})
    except UserError as exc:
        assert "OPENAI_API_KEY" in str(exc) and "'only-on-workers' is not found on PATH" in str(exc)
    else:
        raise AssertionError("a local race must check keys and programs")
