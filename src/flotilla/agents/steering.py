"""How a steering message enters the conversation, by the kind of provider the executor speaks to."""

from __future__ import annotations

from ..messages import Message

# Providers whose wire API takes a system message in the middle of a conversation.
MID_SYSTEM_KINDS = ("openai", "scripted")
USER_MARK = "[Steering message from the person running this agent, not part of the task or a tool result]"


def steering_message(text: str, provider_kind: str) -> Message:
    """A system message where the provider takes one mid-conversation, else a clearly marked user message.

    The Anthropic Messages API refuses ``system`` inside ``messages``; the
    OpenAI Chat API takes it anywhere.
    """
    if provider_kind in MID_SYSTEM_KINDS:
        return Message(role="system", content=f"Steering from the person running this agent: {text}")
    return Message(role="user", content=f"{USER_MARK}\n{text}")


def read_only_notice(provider_kind: str) -> Message:
    """Tells the model that its write tools are gone, so it does not keep trying them."""
    return steering_message("This run is now read-only: tools that change files have been removed. "
                            "Continue using only reading tools.", provider_kind)
