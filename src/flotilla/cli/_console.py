"""The one way the commands make a Rich console, so that piped output is never hard-wrapped.

Rich lays everything out at 80 columns when stdout/stderr is not a terminal, which breaks a
log line in two and cuts model names, run ids and paths inside table cells: a CI log or a
``grep`` then sees half a path. When the stream is not a terminal, a console made here prints
every message as one line (``soft_wrap``) and lays every table out at the width it needs, or
at ``COLUMNS`` when that is set. On a terminal it behaves as Rich always does.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.measure import Measurement

UNBOUNDED = 100_000
"""The width of a piped console: large enough that nothing is laid out narrower than it needs."""


class _FittingConsole(Console):
    """A console that renders each printed renderable at its own natural width (capped by its width)."""

    def print(self, *objects: Any, width: int | None = None, **options: Any) -> None:  # type: ignore[override]
        laid_out = [o for o in objects if not isinstance(o, str)]
        if width is None and laid_out:
            width = max(Measurement.get(self, self.options, o).maximum for o in laid_out)
        super().print(*objects, width=width, **options)


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): Rich's own on a terminal; when piped, no wrapping at 80 columns."""
    console = Console(stderr=stderr, emoji=False)  # ``nosuch:x:`` is a model name, not an emoji code
    if console.is_terminal:  # Rich's own test: a tty, or FORCE_TERMINAL / TTY_COMPATIBLE set
        return console
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else UNBOUNDED
    return _FittingConsole(stderr=stderr, width=width, soft_wrap=True, emoji=False)



def setting(section: str, key: str, model: Any) -> str:
    """``[section] key, else DEFAULT`` for an option's help: where its default comes from, and the
    built-in value, with the brackets escaped so that Typer's Rich help does not eat them as markup."""
    default = model.model_fields[key].default
    return f"\\[{section}] {key} in flotilla.toml" + ("" if default is None else f", else {default}")
