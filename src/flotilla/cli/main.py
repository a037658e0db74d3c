"""The ``flotilla`` command. Each command group lives in its own module with a ``register(app)``."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.markup import escape

from ..errors import NothingToResume, RunError, UserError
from ._console import make_console

app = typer.Typer(
    name="flotilla",
    help="Run many coding agents at once, across many models, and ship what they verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = make_console(stderr=True)

# One module per command group; each defines register(app).
COMMAND_MODULES: tuple[str, ...] = ("gateway_cmd", "models_cmd", "run_cmd", "race_cmd", "durable_cmd", "environment_cmd",
                                   "fanout_cmd", "eval_cmd", "ledger_cmd")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(app)


def main() -> None:
    """Entry point: user mistakes exit 2 with the fix, run failures exit 1, Ctrl-C exits 130."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # non-standalone click returns Exit/Abort codes instead of exiting
            sys.exit(code)
    except NothingToResume as exc:  # not a usage mistake: the run is simply over
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except UserError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except RunError as exc:
        err.print(f"[bold red]failed:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: a wrong flag, a missing argument
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(exc, "exit_code", 2))
