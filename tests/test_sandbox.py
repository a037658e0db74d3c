"""The sandbox, through the real Bash tool in real agent runs: bubblewrap confines each command to its
worktree, hides the home folder, keeps .git read-only, keeps the network off (or open, or open to
allow_hosts through flotilla's proxy) and passes an allow-listed environment. Each refusal reaches
the model in words and lands in the run's record as a SandboxDenied event."""

from __future__ import annotations

import http.server
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flotilla.messages import MessagesRequest
from flotilla.testing import ScriptedModel, reply, tool_calls
from flotilla.workspaces import create_worktree, open_repo

from test_race_support import make_repo, sh
from test_runtime_support import results_in, run, settings_for, spec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")


async def bash(workspace: Path, *commands: str, **sandbox: Any) -> tuple[list[str], Any, Any]:
    """Runs an agent whose one turn calls Bash with each command (sandbox ``required``, so a machine
    where bubblewrap cannot work fails loudly); returns the tool results' texts, the store and the run."""
    seen: list[MessagesRequest] = []

    def answer(request: MessagesRequest) -> Any:
        seen.append(request)
        return reply("done")

    model = ScriptedModel([tool_calls(*[("Bash", {"command": c}) for c in commands]), answer], name="scripted:exec")
    settings = settings_for(workspace, sandbox={"mode": "required", **sandbox})
    result, store, _sink = await run(spec(), "try", workspace, {"scripted:exec": model}, settings=settings,
                                     store=_store(workspace))
    return [r.text() for r in results_in(seen[0])], store, result


def _store(workspace: Path) -> Any:
    from flotilla.store import SQLiteStore

    return SQLiteStore(workspace.parent / f"{workspace.name}.db")  # outside the worktree, as in real runs


def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "w"
    work.mkdir()
    return work


FETCH = f"{sys.executable} -c \"import urllib.request as u, sys; print(u.urlopen(sys.argv[1], timeout=10).read().decode())\" "
"""A command that prints what an HTTP GET of its argument answers (through HTTP_PROXY when set)."""


def denied(store: Any, run_id: str) -> list[str]:
    return [e["reason"] for e in store.events(run_id, "SandboxDenied")]


async def test_a_write_outside_the_worktree_fails_and_writes_nothing(tmp_path: Path) -> None:
    work = workdir(tmp_path)
    (tmp_path / "outside.txt").write_text("readable\n")
    outputs, store, result = await bash(work, "cat ../outside.txt && echo x > ../bash_outside.txt",
                                        "touch /usr/flotilla-sandbox-test", "echo inside > inside.txt")
    assert not (tmp_path / "bash_outside.txt").exists() and not Path("/usr/flotilla-sandbox-test").exists()
    assert "readable" in outputs[0]  # the rest of the filesystem is readable, not writable
    assert f"write outside the worktree refused by the sandbox: {tmp_path / 'bash_outside.txt'}" in outputs[0]
    assert "write outside the worktree refused by the sandbox: /usr/flotilla-sandbox-test" in outputs[1]
    assert (work / "inside.txt").read_text() == "inside\n" and "refused" not in outputs[2]
    assert sorted(denied(store, result.run_id)) == sorted([
        f"write outside the worktree refused by the sandbox: {tmp_path / 'bash_outside.txt'}",
        "write outside the worktree refused by the sandbox: /usr/flotilla-sandbox-test"])
    assert store.get_run(result.run_id)["meta"]["sandbox"]["confined"] is True


async def test_the_home_folder_is_hidden_but_for_the_paths_configured(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("aws_secret_access_key = s3cr3t\n")
    (home / "shared").mkdir()
    (home / "shared" / "ok.txt").write_text("shared ok\n")
    (home / "cache").mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = workdir(tmp_path)
    outputs, store, result = await bash(
        work, "cat ~/.aws/credentials", f"cat {home}/.aws/credentials", "cat ~/shared/ok.txt; echo no >> ~/shared/ok.txt",
        "echo cached > ~/cache/c.txt", "echo new > ~/new.txt", read=["~/shared"], write=["~/cache"])
    assert all("s3cr3t" not in o for o in outputs)
    hidden = f"reading {home / '.aws' / 'credentials'} refused by the sandbox: the home folder is hidden inside"
    assert hidden in outputs[0] and hidden in outputs[1]
    assert "shared ok" in outputs[2] and (home / "shared" / "ok.txt").read_text() == "shared ok\n"  # read-only
    assert (home / "cache" / "c.txt").read_text() == "cached\n"
    assert not (home / "new.txt").exists()
    assert f"write outside the worktree refused by the sandbox: {home / 'new.txt'}" in outputs[4]
    assert any(hidden in d for d in denied(store, result.run_id))


async def test_git_is_read_only_inside_and_still_readable_in_a_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    config = (repo / ".git" / "config").read_text()
    head = sh(repo, "git", "rev-parse", "HEAD")
    outputs, store, result = await bash(repo, "echo '[core]' >> .git/config", "git commit -q --allow-empty -m sneaky")
    assert (repo / ".git" / "config").read_text() == config and sh(repo, "git", "rev-parse", "HEAD") == head
    assert "write to .git/config refused by the sandbox: .git is read-only inside" in outputs[0]
    assert "Exit code" in outputs[1]

    worktree = create_worktree(open_repo(repo), "r1", "a1", head)
    outputs, _store, _result = await bash(worktree.path, "echo changed > calc.py && git status --short",
                                          "git commit -qam sneaky")
    assert outputs[0].strip() == "M calc.py"  # git reads the shared repository, read-only
    assert "Exit code" in outputs[1] and worktree.head() == head


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = f"hello {self.headers['Host']}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_the_network_is_off_unless_turned_on(tmp_path: Path, http_server: int) -> None:
    work = workdir(tmp_path)
    connect = FETCH + f"http://127.0.0.1:{http_server}/"
    resolve = f"{sys.executable} -c \"import socket; socket.getaddrinfo('pypi.org', 443)\""
    outputs, store, result = await bash(work, connect, resolve)
    assert "hello" not in outputs[0] and "Exit code 1" in outputs[0]
    assert "network access refused by the sandbox: the network is off inside" in outputs[1]
    assert any("network access refused" in d for d in denied(store, result.run_id))

    outputs, _store, _result = await bash(work, connect, network="on")
    assert f"hello 127.0.0.1:{http_server}" in outputs[0]


async def test_allow_hosts_opens_those_hosts_only_through_the_proxy(tmp_path: Path, http_server: int) -> None:
    work = workdir(tmp_path)
    tunnel = (f"{sys.executable} -c \"import socket, sys; s = socket.create_connection(('127.0.0.1', 3128)); "
              f"s.sendall(b'CONNECT localhost:{http_server} HTTP/1.1\\r\\n\\r\\n'); print(s.recv(200).decode()); "
              "s.sendall(b'GET / HTTP/1.0\\r\\nHost: tunnelled\\r\\n\\r\\n'); print(s.makefile('rb').read().decode())\"")
    direct = (f"{sys.executable} -c \"import socket; socket.create_connection(('127.0.0.1', {http_server}), "
              "timeout=5)\"")
    outputs, store, result = await bash(work, FETCH + f"http://localhost:{http_server}/",
                                        FETCH + f"http://127.0.0.1:{http_server}/", tunnel, direct,
                                        allow_hosts=["localhost"])
    assert f"hello localhost:{http_server}" in outputs[0]
    refusal = "network access to 127.0.0.1 refused by the sandbox: it is not in [sandbox] allow_hosts (localhost)"
    assert "HTTP Error 403" in outputs[1] and refusal in outputs[1]
    assert "200 Connection Established" in outputs[2] and "hello tunnelled" in outputs[2]
    assert "Exit code 1" in outputs[3]  # no way around the proxy
    assert refusal in denied(store, result.run_id)


async def test_the_environment_is_an_allow_list(tmp_path: Path, monkeypatch) -> None:
    secrets = {"AWS_SECRET_ACCESS_KEY": "aws-value-1", "GITHUB_TOKEN": "ghp_value_2",
               "FLOTILLA_DATABASE_URL": "postgresql://u:pa55word@db/x", "MY_TOOL_MODE": "fast"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    work = workdir(tmp_path)
    outputs, _store, _result = await bash(work, "env", env_passthrough=["MY_TOOL_*"])
    names = {line.split("=", 1)[0] for line in outputs[0].splitlines() if "=" in line}
    for name in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "FLOTILLA_DATABASE_URL"):
        assert name not in names and secrets[name] not in outputs[0]
    assert "MY_TOOL_MODE=fast" in outputs[0]
    assert {"PATH", "HOME", "TMPDIR"} <= names
    assert "TMPDIR=/tmp" in outputs[0]


async def test_pytest_runs_in_the_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    outputs, _store, _result = await bash(repo, f"{sys.executable} -m pytest -q -p no:asyncio")
    assert "1 passed" in outputs[0], outputs[0]
    assert (repo / ".pytest_cache").is_dir()  # it wrote its cache in the worktree


def test_required_without_bwrap_refuses_and_auto_warns_and_records(tmp_path: Path) -> None:
    flotilla = str(Path(sys.executable).parent / "flotilla")
    work = workdir(tmp_path)
    env = {"PATH": str(tmp_path / "no-bwrap-here"), "HOME": str(tmp_path), "FLOTILLA_STORE": str(tmp_path / "s.db")}
    refused = subprocess.run([flotilla, "run", "implementer", "hi", "-m", "scripted:echo", "--sandbox", "required"],
                             cwd=work, env=env, capture_output=True, text=True, timeout=60)
    said = " ".join(refused.stderr.split())  # the console wraps long lines
    assert refused.returncode == 2
    assert "the sandbox is required" in said and "bubblewrap is not installed" in said
    assert "apt-get install bubblewrap" in said and "Traceback" not in said

    auto = subprocess.run([flotilla, "run", "implementer", "hi", "-m", "scripted:echo", "--json", "--no-durable"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert auto.returncode == 0, auto.stderr
    assert "warning: sandbox unavailable, commands run unconfined: bubblewrap is not installed" in \
        " ".join(auto.stderr.split())
    from flotilla.store import SQLiteStore

    (row,) = SQLiteStore(tmp_path / "s.db").list_runs(kind="agent")
    recorded = SQLiteStore(tmp_path / "s.db").get_run(row["id"])["meta"]["sandbox"]
    assert (recorded["mode"], recorded["confined"]) == ("auto", False)
    assert "bubblewrap is not installed" in recorded["reason"]

    bad = subprocess.run([flotilla, "run", "implementer", "hi", "--sandbox", "sometimes"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--sandbox 'sometimes': use one of auto, required, off" in \
        " ".join(bad.stderr.split())


ESCAPE = "echo escaped > ../$1-escaped.txt; echo $1 > $1-ran.txt; exit 0\n"


@pytest.mark.parametrize("confine", [True, False])
def test_race_checks_and_external_agents_are_confined_when_configured(tmp_path: Path, confine: bool) -> None:
    flotilla = str(Path(sys.executable).parent / "flotilla")
    repo = make_repo(tmp_path / "repo")
    (repo / "escape.sh").write_text(ESCAPE)
    table = f"[sandbox]\nmode = \"required\"\nchecks = {str(confine).lower()}\nexternal = {str(confine).lower()}\n"
    (repo / "flotilla.toml").write_text(table)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "escape")
    race = subprocess.run([flotilla, "race", "escape", "--agent", "cmd:sh escape.sh agent", "--check",
                           "sh escape.sh check", "--setup", "sh escape.sh setup", "--no-durable", "--keep", "--json"],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert race.returncode == 0, race.stderr
    attempts = repo / ".flotilla" / "worktrees"
    (race_dir,) = attempts.iterdir()
    worktree = race_dir / "a1"
    assert {p.name for p in worktree.glob("*-ran.txt")} == {"agent-ran.txt", "check-ran.txt", "setup-ran.txt"}
    escaped = sorted(p.name for p in race_dir.glob("*-escaped.txt"))
    assert escaped == ([] if confine else ["agent-escaped.txt", "check-escaped.txt", "setup-escaped.txt"])


def test_bad_sandbox_configuration_names_the_key_and_the_fix(tmp_path: Path) -> None:
    from flotilla.config import load_settings
    from flotilla.errors import ConfigError
    from flotilla.workspaces.sandbox import sandbox_for

    (tmp_path / "flotilla.toml").write_text('[sandbox]\nnetwork = "on"\nallow_hosts = ["pypi.org"]\n')
    with pytest.raises(ConfigError, match=r"sandbox.allow_hosts: has no effect with network = \"on\".*Fix: remove"):
        sandbox_for(load_settings(cwd=tmp_path, environ={}, user_file=tmp_path / "none.toml"))
    (tmp_path / "flotilla.toml").write_text('[sandbox]\nnetwork = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"flotilla.toml: sandbox.network: .*Fix: use one of 'off' or 'on'"):
        sandbox_for(load_settings(cwd=tmp_path, environ={}, user_file=tmp_path / "none.toml"))


async def test_a_timed_out_command_inside_leaves_nothing_running(tmp_path: Path) -> None:
    from test_durable_race_crash import wait_for
    from test_subprocess_reaper import sleeping

    seconds = "811.2345"
    seen: list[MessagesRequest] = []

    def answer(request: MessagesRequest) -> Any:
        seen.append(request)
        return reply("done")

    command = f"sleep {seconds} & sleep {seconds}; echo never"
    model = ScriptedModel([tool_calls(("Bash", {"command": command, "timeout": 1000})), answer], name="scripted:exec")
    work = workdir(tmp_path)
    await run(spec(), "wait", work, {"scripted:exec": model}, store=_store(work),
              settings=settings_for(work, sandbox={"mode": "required"}))
    assert "Command timed out after 1 s" in results_in(seen[0])[0].text()
    wait_for(lambda: not sleeping(seconds), timeout=15)  # the namespace goes as its first process dies
