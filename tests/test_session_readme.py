"""The README's "From Python" example runs as written, and the library's public surface imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from test_race_support import make_repo, sh

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_from_python_example_runs_as_written(tmp_path):
    text = README.read_text()
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    repo = make_repo(tmp_path / "r")
    (tmp_path / "example.py").write_text(code)
    done = subprocess.run([sys.executable, str(tmp_path / "example.py")], cwd=repo, capture_output=True, text=True,
                          timeout=180, env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                                            "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["a1 True", "end_turn"]
    assert "return a + b" in (repo / "calc.py").read_text()
    assert sh(repo, "git", "log", "-1", "--format=%s").startswith("flotilla race ")


def test_the_public_surface():
    import flotilla
    from flotilla import durable, kernel

    assert flotilla.__all__ == ["Session", "__version__"]
    for module in (durable, kernel):
        namespace: dict = {}
        exec(f"from {module.__name__} import *", namespace)  # every name in __all__ exists
        assert set(module.__all__) <= set(namespace)
