"""The dashboard (``flotilla ui``): every run in the store live in a browser, the race board, and the
actions (steer, stop, resume, merge, gc, approve) through the same Session functions the CLI calls.

A front end beside ``cli/``: it calls the Session and reads the store; nothing below imports it.
"""

from .app import create_app
from .server import Bound, bind

__all__ = ["Bound", "bind", "create_app"]
