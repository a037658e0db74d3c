"""Which way imports point: no cycles, and nothing below the front ends imports ``flotilla.testing``.

Read from the source with ``ast``, so imports inside functions and under
``TYPE_CHECKING`` count too: a cycle hidden behind a lazy import is still one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import flotilla

ROOT = Path(flotilla.__file__).parent
FRONT_ENDS = ("flotilla.cli", "flotilla.demo", "flotilla.testing")
"""May import flotilla.testing: the test doubles are product features there (demo, fake-provider)."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The flotilla modules ``module`` imports, anywhere in its body."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.add(name if name in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != module}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_front_ends_import_the_test_doubles() -> None:
    wrong = sorted(f"{m} imports {d}" for m, deps in _graph().items() for d in deps
                   if d.startswith("flotilla.testing") and not m.startswith(FRONT_ENDS))
    assert wrong == []


def test_scripted_echo_builds_without_importing_flotilla_testing() -> None:
    code = ("import asyncio, sys\n"
            "from flotilla.messages import Message, MessagesRequest\n"
            "from flotilla.models.providers import build_model\n"
            "m = build_model('scripted:echo', environ={})\n"
            "r = asyncio.run(m.request(MessagesRequest(model='x', messages=[Message(role='user', content='hi')],"
            " max_tokens=8)))\n"
            "print(r.text(), m.name, any(k.startswith('flotilla.testing') for k in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["hi", "scripted:echo", "False"], done.stderr


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []
