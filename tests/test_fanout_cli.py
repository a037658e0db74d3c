"""`flotilla fanout` through the real CLI: the approval gate without a terminal, --plan-only, --json,
`flotilla show`, `flotilla approve`, `--pick manual` then `flotilla merge`, and clear errors for bad flags."""

from __future__ import annotations

import json
import subprocess

from flotilla.demo_fanout import CHECK, PLAN
from test_durable_fanout_crash import DATES, FLOTILLA, NAMES, PRICES, counts, setup
from test_race_support import sh

LEAD = {"tool_uses": [{"name": "submit_plan", "input": PLAN}]}
SCRIPT = {"lead": [LEAD, {"text": "All fixed."}], "prices": [PRICES, {"text": "prices fixed"}],
          "names": [NAMES, {"text": "names fixed"}], "dates": [DATES, {"text": "dates fixed"}]}


def cli(repo, env, *args, **kw):
    return subprocess.run([FLOTILLA, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, **kw)


def fanout(repo, env, *args):
    return cli(repo, env, "fanout", "Fix the failing tests", "--lead", "fake:lead", "-m", "fake:prices",
               "-m", "fake:names", "-m", "fake:dates", "--check", CHECK, *args)


def test_plan_only_then_pick_manual_then_merge_and_show(tmp_path):
    fake, url, repo, env = setup(tmp_path, {**SCRIPT, "lead": [LEAD, LEAD, {"text": "All fixed."}]})
    try:
        refused = fanout(repo, env)  # no terminal to ask on, no --yes
        assert refused.returncode == 2 and "pass --yes" in refused.stderr and "--plan-only" in refused.stderr
        planned = fanout(repo, env, "--plan-only")
        assert planned.returncode == 0, planned.stderr
        assert "prices" in planned.stdout and "planned only" in planned.stdout
        done = fanout(repo, env, "--yes", "--pick", "manual", "--json", "--no-durable")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["merged"] is None and any("flotilla merge" in n for n in result["notes"])
        assert "{first} {first}" in (repo / "shop/names.py").read_text()  # nothing reached main yet
        shown = cli(repo, {**env, "COLUMNS": "200"}, "show", result["fanout_id"])
        assert shown.returncode == 0 and "proof before→after" in shown.stdout and "fail→pass" in shown.stdout
        assert "names fixed" in shown.stdout
        merged = cli(repo, env, "merge", result["fanout_id"])
        assert merged.returncode == 0, merged.stderr
        assert "{last}" in (repo / "shop/names.py").read_text() and "% 400" in (repo / "shop/dates.py").read_text()
        again = cli(repo, env, "merge", result["fanout_id"])
        assert again.returncode == 2 and "merged already" in again.stderr
        not_waiting = cli(repo, env, "approve", result["fanout_id"])
        assert not_waiting.returncode == 2 and "not waiting for approval" in not_waiting.stderr
        assert sh(repo, "git", "status", "--porcelain") == ""
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_bad_flags_are_named_before_anything_runs(tmp_path):
    fake, url, repo, env = setup(tmp_path, SCRIPT)
    try:
        for args, said in ((["--parallel", "0"], "--parallel must be at least 1"),
                           (["--pick", "later"], "--pick must be auto or manual"),
                           (["--budget-usd", "-1"], "--budget-usd must be more than 0"),
                           (["--agent", "nobody"], "no agent named 'nobody'")):
            done = fanout(repo, env, "--yes", *args)
            assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
        blank = cli(repo, env, "fanout", " ", "--yes")
        assert blank.returncode == 2 and "a fan-out needs a job" in blank.stderr
        demo = cli(repo, env, "demo", "nothing")
        assert demo.returncode == 2 and "flotilla demo fanout" in demo.stderr
        assert counts(url) == {}  # no model was called
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_the_fanout_demo_runs_offline(tmp_path):
    done = subprocess.run([FLOTILLA, "demo", "fanout"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "as expected" in done.stdout and "unproven" in done.stdout and "merged" in done.stdout
