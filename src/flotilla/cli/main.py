"""The ``flotilla`` command. Each command group lives in its own module with a ``register(app)``."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from ..errors import RunError, UserError

app = typer.Typer(
    name="flotilla",
    help="Run many coding agents at once, across many models, and ship what they verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True)

# One module per command group; each defines register(app).
COMMAND_MODULES: tuple[str, ...] = ("gateway_cmd", "models_cmd", "run_cmd", "race_cmd")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(app)


def main() -> None:
    """Entry point: user mistakes exit 2 with the fix, run failures exit 1, Ctrl-C exits 130."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # non-standalone click returns Exit/Abort codes instead of exiting
            sys.exit(code)
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except RunError as exc:
        err.print(f"[bold red]failed:[/] {exc}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            err.print("[yellow]aborted[/]")
            sys.exit(130)
        raise
