"""What every pattern's offline demo shares: a throwaway repository, a Session on scripted models over it,
and the closing line that says whether the demo went as it should."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Room:
    """The demo's repository (``root``), its Session and store, and when it started."""

    def __init__(self, root: Path, session: Any, store: Any, keep: bool) -> None:
        self.root, self.session, self.store, self.keep = root, session, store, keep
        self.started = time.monotonic()

    def finish(self, console: Any, ok: bool) -> int:
        """Prints the closing line; the exit code (0 when the demo went as it should)."""
        console.print(f"\n{'[bold green]as expected[/]' if ok else '[bold red]unexpected outcome[/]'} — demo done in "
                      f"{time.monotonic() - self.started:.1f}s. "
                      + (f"The repository is kept at {self.root}." if self.keep
                         else "The temporary repository is removed."))
        return 0 if ok else 1


@contextmanager
def room(name: str, make: Callable[[Path], Any], models: dict[str, Any], *, keep: bool) -> Iterator[Room]:
    """A repository ``make`` builds in a temporary folder (removed after, unless ``keep``) and an in-memory
    Session over it that reads no user configuration and no user agent files."""
    from .config import load_settings
    from .session import Session
    from .store import SQLiteStore

    root = Path(tempfile.mkdtemp(prefix="flotilla-demo-")) / name
    store = None
    try:
        make(root)
        settings = load_settings(cwd=root, environ={}, user_file=root / "no-user-config.toml")
        store = SQLiteStore(root / ".flotilla" / "flotilla.db")
        session = Session(project=root, durable=False, store=store, settings=settings, models=models,
                          home=root / "no-home")
        yield Room(root, session, store, keep)
    finally:
        if store is not None:
            store.close()
        if not keep:
            shutil.rmtree(root.parent, ignore_errors=True)
