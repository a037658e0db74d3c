"""What every model wrapper shares: forwarding to the model it wraps, and closing a stream early.

A wrapper has the model's own signature (``request``, ``stream``,
``count_tokens``, ``reset``) and changes one thing. ``WrapperModel`` forwards
everything, so each wrapper overrides only what it changes, as pydantic-ai's
``WrapperModel`` does. Nothing here imports another wrapper, so every wrapper
module can import it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..messages import MessagesRequest, MessagesResponse
from ..protocols import Model


async def close_stream(stream: Any) -> None:
    """Closes a model's stream early (releasing its HTTP connection); a no-op once it has ended."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class WrapperModel:
    """Forwards every call to ``model``; subclasses override what they change.

    Keyword options beyond the request (the adapters' ``headers=``) pass
    through untouched. ``reset()`` starts a new turn: it reaches a
    ``Fallback`` wherever it sits in the stack.
    """

    def __init__(self, model: Model) -> None:
        self.model = model

    @property
    def name(self) -> str:
        return self.model.name

    async def request(self, request: MessagesRequest, **options: Any) -> MessagesResponse:
        return await self.model.request(request, **options)

    async def stream(self, request: MessagesRequest, **options: Any) -> AsyncIterator[Any]:
        inner = self.model.stream(request, **options)
        try:
            async for event in inner:
                yield event
        finally:
            await close_stream(inner)

    async def count_tokens(self, request: MessagesRequest, **options: Any) -> int:
        return await self.model.count_tokens(request, **options)

    def reset(self) -> None:
        reset = getattr(self.model, "reset", None)  # concrete adapters have no turn to reset
        if reset is not None:
            reset()
