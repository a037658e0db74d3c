"""`flotilla run`, `agents`, `runs`, `show`, `steer` and `stop`, as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flotilla.store import SQLiteStore

FLOTILLA = [str(Path(sys.executable).parent / "flotilla")]

# A driver that registers scripted models, then runs the CLI as `flotilla` would.
DRIVER = '''
import sys
from flotilla.messages import MessagesRequest
from flotilla.testing import FunctionModel, ScriptedModel, reply, tool_call
from flotilla.testing.registry import register_scripted

def echo_last(request: MessagesRequest):
    return reply("last said: " + request.messages[-1].text())

register_scripted("writer", lambda: ScriptedModel([
    tool_call("Write", {"file_path": "made.txt", "content": "made by flotilla\\n"}), reply("made it")]))
register_scripted("waiter", lambda: ScriptedModel([
    tool_call("Bash", {"command": "while [ ! -f go ]; do sleep 0.05; done"}), echo_last]))
register_scripted("forever", lambda: FunctionModel(lambda request: tool_call("Glob", {"pattern": "*"})))
register_scripted("sleeper", lambda: FunctionModel(lambda request: tool_call("Bash", {"command": "sleep 0.5"})))
from flotilla.cli.main import main
sys.argv = ["flotilla", *sys.argv[1:]]
main()
'''


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FLOTILLA_STORE": str(tmp_path / "store.db"), "HOME": str(tmp_path / "home"),
            "COLUMNS": "200"}


def _flotilla(tmp_path: Path, *args: str, driver: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(_driver(tmp_path))] if driver else FLOTILLA
    return subprocess.run([*command, *args], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60)


def _driver(tmp_path: Path) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return path


def test_run_json_then_runs_and_show(tmp_path: Path) -> None:
    done = _flotilla(tmp_path, "run", "general-purpose", "hello flotilla", "--model", "scripted:echo", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["text"], result["stop_reason"], result["turns"]) == ("hello flotilla", "end_turn", 1)

    listed = _flotilla(tmp_path, "runs")
    assert result["run_id"] in listed.stdout and "done" in listed.stdout

    shown = _flotilla(tmp_path, "show", result["run_id"][:6])
    assert shown.returncode == 0, shown.stderr
    assert "hello flotilla" in shown.stdout and "scripted:echo" in shown.stdout and "executor" in shown.stdout
    data = json.loads(_flotilla(tmp_path, "show", result["run_id"], "--json").stdout)
    assert [m["role"] for m in data["transcript"]] == ["user", "assistant"]


def test_run_with_the_live_display_and_a_summary(tmp_path: Path) -> None:
    done = _flotilla(tmp_path, "run", "general-purpose", "make a file", "--model", "scripted:writer",
                     "--max-turns", "5", driver=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "made.txt").read_text() == "made by flotilla\n"
    assert done.stdout.strip() == "made it"
    assert "end_turn" in done.stderr and "2 turns" in done.stderr and "files changed: made.txt" in done.stderr


def test_max_turns_flag_exits_1_with_the_reason(tmp_path: Path) -> None:
    done = _flotilla(tmp_path, "run", "general-purpose", "make a file", "--model", "scripted:writer",
                     "--max-turns", "1", "--json", driver=True)
    assert done.returncode == 1
    assert json.loads(done.stdout)["stop_reason"] == "max_turns"


def test_a_model_that_never_ends_its_turn_is_stopped_by_the_default_limits(tmp_path: Path) -> None:
    from flotilla.agents.limits import LimitsConfig

    done = _flotilla(tmp_path, "run", "general-purpose", "loop", "--model", "scripted:forever", "--json", driver=True)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert (result["stop_reason"], result["turns"]) == ("max_turns", LimitsConfig().max_turns)
    assert "[limits]" in result["error"]
    assert SQLiteStore(tmp_path / "store.db").get_run(result["run_id"])["status"] == "limited"


def test_the_limits_table_of_flotilla_toml_and_the_flags_that_override_it(tmp_path: Path) -> None:
    (tmp_path / "flotilla.toml").write_text("[limits]\nmax_turns = 4\nwall_clock_s = 1\n")
    done = _flotilla(tmp_path, "run", "general-purpose", "loop", "--model", "scripted:forever", "--json", driver=True)
    assert json.loads(done.stdout)["turns"] == 4
    done = _flotilla(tmp_path, "run", "general-purpose", "loop", "--model", "scripted:forever", "--json",
                     "--max-turns", "2", driver=True)
    assert json.loads(done.stdout)["turns"] == 2

    slow = _flotilla(tmp_path, "run", "general-purpose", "nap", "--model", "scripted:sleeper", "--json", driver=True)
    assert slow.returncode == 1, slow.stderr
    result = json.loads(slow.stdout)
    assert result["stop_reason"] == "timeout" and "wall clock of 1s reached" in result["error"]
    longer = _flotilla(tmp_path, "run", "general-purpose", "nap", "--model", "scripted:sleeper", "--json",
                       "--timeout", "2", "--max-turns", "50", driver=True)
    assert "wall clock of 2s reached" in json.loads(longer.stdout)["error"]


def _start_waiting_run(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(_driver(tmp_path)), "run", "general-purpose", "wait",
                             "--model", "scripted:waiter", "--json"], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (tmp_path / "store.db").exists():
            runs = SQLiteStore(tmp_path / "store.db").list_runs()
            if runs and SQLiteStore(tmp_path / "store.db").events(runs[0]["id"], "ToolCalled") == [] \
                    and len(SQLiteStore(tmp_path / "store.db").events(runs[0]["id"], "MessageAdded")) >= 2:
                return proc, runs[0]["id"]
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the run never started: {proc.communicate()}")


def test_steer_reaches_a_running_run(tmp_path: Path) -> None:
    proc, run_id = _start_waiting_run(tmp_path)
    steered = _flotilla(tmp_path, "steer", run_id, "prefer small commits")
    assert steered.returncode == 0, steered.stderr
    (tmp_path / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["text"] == "last said: Steering from the person running this agent: prefer small commits"
    finished = _flotilla(tmp_path, "steer", run_id, "too late")
    assert finished.returncode == 2 and "is not running" in finished.stderr


def test_stop_ends_a_running_run_cleanly(tmp_path: Path) -> None:
    proc, run_id = _start_waiting_run(tmp_path)
    assert _flotilla(tmp_path, "stop", run_id).returncode == 0
    (tmp_path / "go").touch()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and json.loads(out)["stop_reason"] == "stopped"
    row = SQLiteStore(tmp_path / "store.db").get_run(run_id)
    assert (row["status"], row["reason"]) == ("cancelled", "stopped")


def test_agents_lists_and_reports_broken_files(tmp_path: Path) -> None:
    folder = tmp_path / ".claude" / "agents"
    folder.mkdir(parents=True)
    (folder / "mine.md").write_text("---\nname: mine\nmodel: haiku\ntools: Read\n---\nHi")
    (folder / "bad.md").write_text("---\nname: bad\nmaxTurns: zero\n---\nHi")
    listed = _flotilla(tmp_path, "agents")
    assert listed.returncode == 0, listed.stderr
    assert "mine" in listed.stdout and ".claude/agents/mine.md" in listed.stdout
    assert "anthropic:claude-haiku" in listed.stdout and "general-purpose" in listed.stdout
    assert "bad.md" in listed.stderr and "maxTurns" in listed.stderr


def test_ctrl_c_records_the_run_as_cancelled(tmp_path: Path) -> None:
    proc, run_id = _start_waiting_run(tmp_path)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    row = SQLiteStore(tmp_path / "store.db").get_run(run_id)
    assert row["status"] == "cancelled" and "Ctrl-C" in row["reason"]
    (said,) = [line for line in err.splitlines() if "interrupted" in line]  # one line: id, state, what next
    assert f"stopped run {run_id} (cancelled)" in said and f"flotilla show {run_id}" in said


def test_steer_read_only_reaches_a_running_run(tmp_path: Path) -> None:
    proc, run_id = _start_waiting_run(tmp_path)
    assert _flotilla(tmp_path, "steer", run_id, "--read-only").returncode == 0
    (tmp_path / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "This run is now read-only" in json.loads(out)["text"]
    steering = SQLiteStore(tmp_path / "store.db").events(run_id, "SteeringReceived")
    assert [s["read_only"] for s in steering] == [True]
