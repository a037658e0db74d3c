"""``--sandbox auto|required|off``, shared by every command that runs agents.

The flag sets ``FLOTILLA_SANDBOX__MODE`` for this process, the configuration's
environment layer, so that every place that loads the settings afresh (a
durable run's workflow, a race's attempts) sees the same choice. Deciding it
here, before anything starts, makes ``required`` refuse at once with the reason
and puts ``auto``'s warning in the command's header.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ..config import load_settings
from ..errors import UserError
from ..workspaces.sandbox import Sandbox, sandbox_for

MODES = ("auto", "required", "off")
HELP = ("Confine the agent's commands with bubblewrap (Linux): auto (when it works, else warn and run "
        "unconfined), required (refuse to start without it), off. Default: [sandbox] mode, else auto.")


def sandbox_option() -> Any:
    return typer.Option(None, "--sandbox", help=HELP, metavar="auto|required|off")


def choose_sandbox(mode: Optional[str], cwd: Path, err: Console) -> Sandbox:
    """Applies ``--sandbox`` and decides the sandbox once; prints ``auto``'s warning when unconfined."""
    if mode is not None:
        if mode not in MODES:
            raise UserError(f"--sandbox {mode!r}: use one of {', '.join(MODES)}")
        os.environ["FLOTILLA_SANDBOX__MODE"] = mode
    sandbox = sandbox_for(load_settings(cwd=cwd))
    if sandbox.warning:
        err.print(f"[yellow]warning:[/] {escape(sandbox.warning)}", highlight=False)
    return sandbox
