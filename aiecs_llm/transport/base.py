"""The one interface a call leaves through, whichever way it is sent.

Both implementations return LiteLLM's own objects: a ``litellm.ModelResponse`` for a whole
answer, and for a stream an iterator of ``litellm.ModelResponseStream`` chunks. The code that
reads them (``aiecs_llm.client.reading``) is therefore the same for both, and so is what it
makes of them.
A failure leaves as the exception ``litellm.acompletion`` raises for it (LiteLLM's mapped
exception, with the provider's own exception as its ``__cause__`` or ``__context__``);
``aiecs_llm.client.pipeline`` translates it into our error tree, once, for either path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from aiecs_llm.transport.call import PreparedCall

ModelResponse: TypeAlias = Any
"""A ``litellm.ModelResponse`` (LiteLLM ships no type information mypy can use)."""
StreamChunk: TypeAlias = Any
"""A ``litellm.ModelResponseStream``."""


class ChunkStream(Protocol):
    """A streamed answer's chunks; ``aclose()`` releases its connection early."""

    def __aiter__(self) -> AsyncIterator[StreamChunk]: ...

    async def __anext__(self) -> StreamChunk: ...

    async def aclose(self) -> None:
        """Release the connection; the stream yields nothing more."""
        ...


class Transport(Protocol):
    """Sends a call's request and hands back LiteLLM's reading of the answer."""

    async def send(self, call: PreparedCall, *, timeout: float) -> ModelResponse:
        """The whole answer, within ``timeout`` seconds."""
        ...

    async def stream(self, call: PreparedCall, *, timeout: float) -> ChunkStream:
        """The answer's chunks, once the provider has started answering (within ``timeout``
        seconds; each later read of the body gets the same limit).
        """
        ...

    async def close(self) -> None:
        """Release the connections this transport opened; idempotent."""
        ...


class SelectiveTransport(Transport, Protocol):
    """A transport that carries only some calls (the others go through LiteLLM's)."""

    def handles(self, call: PreparedCall) -> bool:
        """Whether this transport sends ``call``; decided before anything is sent."""
        ...
