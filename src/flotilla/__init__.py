"""flotilla: run many coding agents at once, across many models, and ship what they verify.

The public API is ``Session`` (see ``flotilla.session``); the test doubles are in ``flotilla.testing``.
"""

from .session import Session

__version__ = "0.1.0"

__all__ = ["Session", "__version__"]
