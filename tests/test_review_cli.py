"""`flotilla review` through the real CLI against the fake provider: review of an existing branch; bad
flags; write → review → kill -9 mid-fix → `flotilla resume` replays the loop → clean, `flotilla show`,
`flotilla merge`."""

from __future__ import annotations

import json

from review_support import FIXED, finding
from test_durable_race_crash import counts, with_fake_provider
from test_fanout_cli import cli
from test_race_support import CHECK, make_repo, sh

WRONG = "def add(a, b):\n    return a\n"


def write(content):
    return {"tool_uses": [{"name": "Write", "input": {"file_path": "calc.py", "content": content}}]}


def reviewed(verdict, *findings, **more):
    return {"tool_uses": [{"name": "submit_review", "input": {"verdict": verdict, "findings": list(findings), **more}}]}


def test_review_an_existing_branch_and_bad_flags(tmp_path):
    repo = make_repo(tmp_path / "r")
    script = {"gpt-r": [reviewed("clean", finding("nit", "P3", 0.5))]}
    fake, url, env = with_fake_provider(tmp_path, script, repo)
    try:
        sh(repo, "git", "switch", "-q", "-c", "feature")
        (repo / "calc.py").write_text(FIXED)
        sh(repo, "git", "commit", "-qam", "fix")
        sh(repo, "git", "switch", "-q", "main")
        done = cli(repo, env, "review", "--branch", "feature", "--base", "main", "--reviewer", "fake:gpt-r", "--json",
                   "--no-durable")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["ended"] == "clean" and result["branch"] == "feature" and result["findings"][0]["id"] == "nit"
        warned = cli(repo, env, "review", "--no-durable", "Fix", "--writer", "fake:gpt-w", "--reviewer", "fake:gpt-r",
                     "--rounds", "0")
        assert "same lab: fake:gpt-w and fake:gpt-r are both openai's" in warned.stderr  # said before anything runs
        for args, said in ((["Fix", "--reviewer", "fake:gpt-r"], "needs --writer"),
                           (["--reviewer", "fake:gpt-r"], "needs a task"),
                           (["Fix", "--writer", "fake:gpt-r", "--reviewer", "fake:gpt-r", "--rounds", "0"], "--rounds"),
                           (["Fix", "--writer", "fake:gpt-r", "--reviewer", "fake:gpt-r", "--block-severity", "P7"],
                            "--block-severity")):
            bad = cli(repo, env, "review", "--no-durable", *args)
            assert bad.returncode == 2 and said in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert counts(url) == {"gpt-r": 1}
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_kill_9_mid_fix_then_resume_replays_the_loop_and_resends_nothing_finished(tmp_path):
    import signal
    import subprocess

    from test_durable_race_crash import FLOTILLA, events, wait_for

    repo = make_repo(tmp_path / "r")
    script = {"claude-w": [write(WRONG), {"text": "done"}, write(FIXED), {"delay": 60, "text": "never sent"},
                           {"text": "fixed after resume"}],
              "gpt-r": [reviewed("changes_needed", finding("sign", "P0", 0.9)), reviewed("clean", resolved=["sign"])]}
    fake, url, env = with_fake_provider(tmp_path, script, repo)
    try:
        db = repo / ".flotilla" / "flotilla.db"
        run = subprocess.Popen([FLOTILLA, "review", "Fix add", "--writer", "fake:claude-w", "--reviewer", "fake:gpt-r",
                                "--check", CHECK, "--json"], cwd=repo, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        wait_for(lambda: counts(url).get("claude-w") == 4 or run.poll() is not None, timeout=60)
        assert run.poll() is None, run.communicate()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        rid = next(e["run_id"] for e in events(db, "RunStarted") if e["kind"] == "review")
        done = subprocess.run([FLOTILLA, "resume", rid, "--json"], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["ended"] == "clean" and [f["status"] for f in result["findings"]] == ["fixed"]
        assert counts(url) == {"claude-w": 5, "gpt-r": 2}  # round 1's review was not asked again
        assert len(events(db, "ReviewRound")) == 2 and result["rounds"][1]["resolved"] == ["sign"]
        assert sh(repo, "git", "show", f"{result['branch']}:calc.py") == FIXED.strip()
        shown = cli(repo, {**env, "COLUMNS": "200"}, "show", rid)
        assert shown.returncode == 0 and "round 1: changes_needed" in shown.stdout
        assert "blocking, fixed in round 2" in shown.stdout and "flotilla merge" in shown.stdout
        assert "return a - b" in (repo / "calc.py").read_text()  # nothing merged by the loop
        merged = cli(repo, env, "merge", rid)
        assert merged.returncode == 0, merged.stderr
        assert (repo / "calc.py").read_text() == FIXED and sh(repo, "git", "status", "--porcelain") == ""
    finally:
        fake.terminate()
        fake.wait(timeout=10)
