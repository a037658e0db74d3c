"""kill -9 of `flotilla fanout` mid-run, then `flotilla resume`: the fan-out completes, no finished model
call is sent again (the fake provider, in its own process, counts every request) and no slice gets a
second worker. And SIGTERM: a stop, recorded as cancelled, every slice's work kept on its branch."""

from __future__ import annotations

import json
import signal
import subprocess

from flotilla.demo_fanout import CHECK, PLAN, make_shop
from flotilla.store import SQLiteStore
from test_durable_race_crash import FLOTILLA, counts, events, wait_for, with_fake_provider

__all__ = ["FLOTILLA", "counts", "setup"]
from test_race_support import branches, sh, worktrees


def edit(path, old, new):
    return {"tool_uses": [{"name": "Edit", "input": {"file_path": path, "old_string": old, "new_string": new}}]}


PRICES = edit("shop/prices.py", "price * percent", "price * percent / 100")
NAMES = edit("shop/names.py", "{first} {first}", "{first} {last}")
DATES = edit("shop/dates.py", "year % 4 == 0", "year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)")


def setup(tmp_path, script):
    repo = make_shop(tmp_path / "shop")
    fake, url, env = with_fake_provider(tmp_path, script, repo)
    return fake, url, repo, env


def launch(repo, env, *extra):
    return subprocess.Popen([FLOTILLA, "fanout", "Fix the failing tests", "--lead", "fake:lead", "-m", "fake:prices",
                             "-m", "fake:names", "-m", "fake:dates", "--check", CHECK, "--yes", "--json", *extra],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_fanout_then_resume_repeats_no_finished_call_and_no_worker(tmp_path):
    script = {"lead": [{"tool_uses": [{"name": "submit_plan", "input": PLAN}]}, {"text": "All three fixed."}],
              "prices": [PRICES, {"text": "prices fixed"}],
              "names": [NAMES, {"delay": 60, "text": "never sent"}, {"text": "names fixed after resume"}],
              "dates": [DATES, {"text": "dates fixed"}]}
    fake, url, repo, env = setup(tmp_path, script)
    try:
        db = repo / ".flotilla" / "flotilla.db"
        run = launch(repo, env)
        wait_for(lambda: {e["attempt"] for e in events(db, "AttemptFinished")} == {"prices", "dates"}
                 and counts(url).get("names") == 2 or run.poll() is not None, timeout=60)
        assert run.poll() is None, run.communicate()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        fid = next(e["run_id"] for e in events(db, "RunStarted") if e["kind"] == "fanout")

        done = subprocess.run([FLOTILLA, "resume", fid, "--json"], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert {s["id"]: s["status"] for s in result["slices"]} == {"prices": "merged", "names": "merged",
                                                                    "dates": "merged"}
        assert result["status"] == "done" and result["merged"] and result["report"] == "All three fixed."
        # the lead planned once; finished workers' calls were not sent again; the one in flight was
        assert counts(url) == {"lead": 2, "prices": 2, "names": 3, "dates": 2}
        started = [e["attempt"] for e in events(db, "AttemptStarted")]
        assert sorted(started) == ["dates", "names", "prices"]  # one worker per slice, ever
        store = SQLiteStore(db)
        meta = store.get_run(fid)["meta"]
        assert sorted(r["id"] for r in store.list_runs(parent_id=fid)) == sorted(
            [s["run_id"] for s in meta["plan"]] + [meta["lead_run_id"]])
        assert "{last}" in (repo / "shop/names.py").read_text()
        assert sh(repo, "git", "branch", "--list", f"flotilla/{fid}/*") == ""
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def test_sigterm_stops_a_fanout_for_good_and_keeps_each_slices_branch(tmp_path):
    slow = {"delay": 60, "text": "never"}
    script = {"lead": [{"tool_uses": [{"name": "submit_plan", "input": PLAN}]}],
              "prices": [PRICES, slow], "names": [NAMES, slow], "dates": [DATES, slow]}
    fake, url, repo, env = setup(tmp_path, script)
    try:
        head = sh(repo, "git", "rev-parse", "HEAD")
        run = launch(repo, env)
        wait_for(lambda: all(counts(url).get(k) == 2 for k in ("prices", "names", "dates")) or run.poll() is not None,
                 timeout=60)
        run.send_signal(signal.SIGTERM)
        _out, err = run.communicate(timeout=60)
        assert run.returncode == 1 and "stopped by SIGTERM" in err, err
        store = SQLiteStore(repo / ".flotilla" / "flotilla.db")
        (fanout,) = store.list_runs(kind="fanout")
        assert fanout["status"] == "cancelled"
        assert all(c["status"] == "cancelled" for c in store.list_runs(parent_id=fanout["id"])
                   if c["id"] != fanout["meta"]["lead_run_id"])
        assert sorted(b for b in branches(repo) if b.startswith("flotilla/")) == sorted(
            f"flotilla/{fanout['id']}/{k}" for k in ("dates", "names", "prices"))
        assert "percent / 100" in sh(repo, "git", "show", f"flotilla/{fanout['id']}/prices:shop/prices.py")
        assert worktrees(repo) == [str(repo)] and sh(repo, "git", "rev-parse", "HEAD") == head
        resumed = subprocess.run([FLOTILLA, "resume", fanout["id"]], cwd=repo, env=env, capture_output=True,
                                 text=True, timeout=60)
        assert resumed.returncode == 1 and "nothing to resume" in resumed.stderr
    finally:
        fake.terminate()
        fake.wait(timeout=10)
