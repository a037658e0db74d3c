"""flotilla: run many coding agents at once, across many models, and ship what they verify."""

__version__ = "0.1.0"
