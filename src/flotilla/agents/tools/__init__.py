"""The tools agents call, with Claude Code's names and input fields.

``default_tools()`` gives one of each file and shell tool; the agent runtime adds
``Agent`` (subagents) on top.
"""

from __future__ import annotations

from typing import Any

from .base import ToolContext, ToolOutput
from .bash import Bash
from .edit import Edit
from .glob import Glob
from .grep import Grep
from .read import Read
from .schema import ToolError, guarded, validate
from .write import Write

__all__ = [
    "Bash", "Edit", "Glob", "Grep", "Read", "Write",
    "ToolContext", "ToolError", "ToolOutput", "default_tools", "guarded", "validate",
]


def default_tools(**bash_options: Any) -> dict[str, Any]:
    """``Read``, ``Write``, ``Edit``, ``Glob``, ``Grep`` and ``Bash``, by name.

    ``bash_options`` go to ``Bash`` (``default_timeout_s``, ``max_timeout_s``, ``output_limit``).
    """
    tools = [Read(), Write(), Edit(), Glob(), Grep(), Bash(**bash_options)]
    return {tool.name: tool for tool in tools}
