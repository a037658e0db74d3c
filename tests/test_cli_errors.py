"""The command line answers mistakes with the fix and exit code 2, never a traceback."""

import subprocess
import sys


def flotilla(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flotilla.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_wrong_flag_missing_argument_unknown_command(tmp_path):
    for args, says in ((["race", "--modle", "x"], "No such option: --modle"),
                       (["run", "implementer"], "Missing argument 'task'"),
                       (["bogus"], "No such command 'bogus'")):
        done = flotilla(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr


def test_user_error_keeps_square_brackets(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a").write_text("a")
    subprocess.run(["git", "add", "a"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=n", "commit", "-qm", "a"], cwd=tmp_path,
                   check=True)
    done = flotilla("race", "do x", "--model", "scripted:echo", cwd=tmp_path)
    assert done.returncode == 2
    assert "[race]" in done.stderr  # not eaten as console markup


def test_dirty_repository_is_refused_before_any_estimate(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a").write_text("a")
    subprocess.run(["git", "add", "a"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=n", "commit", "-qm", "a"], cwd=tmp_path,
                   check=True)
    (tmp_path / "a").write_text("changed")
    done = flotilla("race", "do x", "--model", "scripted:echo", "--check", "true", cwd=tmp_path)
    assert done.returncode == 2
    assert "uncommitted changes (a)" in done.stderr and "--allow-dirty" in done.stderr
    assert "estimate" not in done.stderr
    assert (tmp_path / "a").read_text() == "changed"  # nothing of the user's work is touched
