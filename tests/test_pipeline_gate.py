"""The pipeline's approval gate across processes, through the real CLI and the fake provider: `flotilla
pipeline run` exits at the gate, `flotilla runs` says a person is needed, `flotilla approve` from another
process continues it; kill -9 of a process waiting at the gate then `flotilla reject`; kill -9 mid-stage
then `flotilla resume`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from review_support import FIXED, finding
from test_durable_race_crash import FLOTILLA, counts, events, wait_for, with_fake_provider
from test_fanout_cli import cli
from test_race_support import make_repo, sh

PLAN = {"plan": "# Plan\n\nfix add", "files": ["calc.py", "ui.html"], "summary": "fix add"}
STAGES = ("architect", "backend", "frontend", "test-writer", "security-reviewer")


def calls(*blocks):
    return {"tool_uses": list(blocks)}


def write(path, content):
    return {"name": "Write", "input": {"file_path": path, "content": content}}


def script(backend_extra=()):
    return {"architect": [calls({"name": "submit_plan", "input": PLAN})],
            "backend": [calls(write("calc.py", FIXED)), *backend_extra, {"text": "fixed add"}],
            "frontend": [calls(write("ui.html", "<p>calc</p>\n")), {"text": "a page"}],
            "test-writer": [{"text": "the tests are fine"}],
            "security-reviewer": [calls({"name": "submit_review", "input": {"verdict": "clean", "findings": [
                finding("nit", "P3", 0.5)]}})]}


def stage_flags():
    return [x for s in STAGES for x in ("--stage-model", f"{s}=fake:{s}")]


def pipeline_id(db):
    return next(e["run_id"] for e in events(db, "RunStarted") if e["kind"] == "pipeline")


def test_the_cli_exits_at_the_gate_and_approve_from_another_process_continues_it(tmp_path):
    repo = make_repo(tmp_path / "r")
    fake, url, env = with_fake_provider(tmp_path, script(), repo)
    try:
        started = cli(repo, env, "pipeline", "run", "Fix add and add a page", *stage_flags())
        assert started.returncode == 0, started.stderr
        assert "waiting: `flotilla approve" in started.stdout and "fix add" in started.stdout
        pid = started.stdout.split()[1].rstrip(":")
        assert counts(url) == {"architect": 1}  # nothing ran past the gate
        runs = cli(repo, {**env, "COLUMNS": "200"}, "runs")
        assert "waiting: approve or reject" in runs.stdout, runs.stdout
        gc = cli(repo, env, "gc")  # its process is gone, but it is waiting, not crashed: kept
        assert gc.returncode == 0 and f"flotilla/{pid}/main" in sh(repo, "git", "branch", "--list", "flotilla/*")
        done = cli(repo, env, "approve", pid, "--note", "go ahead", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "done" and result["approvals"][0] == {"approved": True, "note": "go ahead",
                                                                        "after": "architect"}
        assert result["review"]["ended"] == "clean"
        assert counts(url) == {"architect": 1, "backend": 2, "frontend": 2, "test-writer": 1, "security-reviewer": 1}
        listed = cli(repo, env, "pipeline", "list")
        assert listed.returncode == 0 and "architect [gate] → backend ∥ frontend → test-writer" in listed.stdout
        again = cli(repo, env, "approve", pid)
        assert again.returncode == 2 and "not waiting for approval" in again.stderr
        merged = cli(repo, env, "merge", pid)  # the person's step: the pipeline merged nothing itself
        assert merged.returncode == 0, merged.stderr
        assert (repo / "calc.py").read_text() == FIXED and (repo / "PLAN.md").read_text().startswith("# Plan")
    finally:
        fake.terminate()
        fake.wait(timeout=10)


WAITER = """
import sys
from flotilla import Session
s = Session(project=".")
s.pipeline_sync("Fix add", models={k: "fake:" + k for k in %r})
""" % (STAGES,)


def test_kill_9_while_waiting_at_the_gate_then_a_rejection_from_another_process_ends_it(tmp_path):
    repo = make_repo(tmp_path / "r")
    fake, url, env = with_fake_provider(tmp_path, script(), repo)
    try:
        db = repo / ".flotilla" / "flotilla.db"
        waiter = subprocess.Popen([sys.executable, "-c", WAITER], cwd=repo, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        wait_for(lambda: events(db, "GateWaiting") or waiter.poll() is not None, timeout=60)
        assert waiter.poll() is None, waiter.communicate()
        waiter.send_signal(signal.SIGKILL)
        waiter.wait(timeout=10)
        runs = cli(repo, {**env, "COLUMNS": "200"}, "runs")
        assert "waiting: approve or reject" in runs.stdout, runs.stdout  # its process is gone: still waiting
        done = cli(repo, env, "reject", pipeline_id(db), "--reason", "not this way")
        assert done.returncode == 1 and "rejected at architect: not this way" in done.stdout, done.stdout + done.stderr
        assert counts(url) == {"architect": 1}  # the plan was not made twice; nothing ran past the gate
        assert sh(repo, "git", "worktree", "list").count("\n") == 0
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_kill_9_mid_stage_then_resume_repeats_no_finished_call(tmp_path):
    repo = make_repo(tmp_path / "r")
    slow = [{"delay": 60, "text": "never sent"}]
    fake, url, env = with_fake_provider(tmp_path, script(backend_extra=slow), repo)
    try:
        db = repo / ".flotilla" / "flotilla.db"
        run = subprocess.Popen([FLOTILLA, "pipeline", "run", "Fix add", "--yes", "--json", *stage_flags()], cwd=repo,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: "frontend" in {e["attempt"] for e in events(db, "AttemptFinished")}
                 and counts(url).get("backend") == 2 or run.poll() is not None, timeout=60)
        assert run.poll() is None, run.communicate()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        done = subprocess.run([FLOTILLA, "resume", pipeline_id(db), "--json"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "done", (result["reason"], [(r["stage"], r["error"]) for r in result["stages"]])
        assert {r["stage"]: r["status"] for r in result["stages"]} == {"backend": "merged", "frontend": "merged",
                                                                      "test-writer": "done"}
        # the call in flight was sent again, nothing that had finished
        assert counts(url) == {"architect": 1, "backend": 3, "frontend": 2, "test-writer": 1, "security-reviewer": 1}
        assert sh(repo, "git", "show", f"{result['branch']}:calc.py") == FIXED.strip()
    finally:
        fake.terminate()
        fake.wait(timeout=10)
