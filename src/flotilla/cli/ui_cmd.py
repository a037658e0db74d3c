"""``flotilla ui``: the web dashboard over this project's run store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import make_console

err = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    port: int = typer.Option(8789, "--port", min=0, max=65535, help="The port (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to bind; any but loopback needs the token "
                             "printed at start."),
    open_browser: bool = typer.Option(False, "--open", help="Open the dashboard in a browser."),
    store: Optional[str] = typer.Option(None, "--store", help="Run store path (default: the project's)."),
) -> None:
    """Watch every run live in a browser: runs, transcripts, the race board; steer, stop, resume, merge."""
    from ..session import Session
    from ..store import open_store
    from ..web import bind

    session = Session(project=Path.cwd(), durable=False, store=open_store(store))
    bound = bind(session, host=host, port=port)
    err.print(f"flotilla ui: {bound.link}", highlight=False, soft_wrap=True)
    if bound.token:
        err.print("  bound beyond loopback: the link above carries its token, shown only this once", highlight=False)
    err.print(f"  store {session.store.path} · Ctrl-C stops it", highlight=False)
    if open_browser:
        import webbrowser

        webbrowser.open(bound.link)
    bound.serve()
