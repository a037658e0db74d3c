"""Test doubles that ship with flotilla: scripted models and a fake provider server."""

from .fake_provider import FakeProvider, FakeProviderHost
from .registry import register_scripted, scripted_model, scripted_names
from .scripted import FunctionModel, ScriptError, ScriptedModel, fail, reply, tool_call, tool_calls

__all__ = ["FakeProvider", "FakeProviderHost", "FunctionModel", "ScriptError", "ScriptedModel", "fail", "register_scripted", "reply",
           "scripted_model", "scripted_names", "tool_call", "tool_calls"]
