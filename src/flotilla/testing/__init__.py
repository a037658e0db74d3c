"""Test doubles that ship with flotilla: scripted models and a fake provider server."""

from .scripted import FunctionModel, ScriptError, ScriptedModel, fail, reply, tool_call, tool_calls

__all__ = ["FunctionModel", "ScriptError", "ScriptedModel", "fail", "reply", "tool_call", "tool_calls"]
