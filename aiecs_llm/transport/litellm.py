"""The transport every call can take: ``litellm.acompletion``, with LiteLLM's whole per-call
machinery (its callbacks, its logging, every provider it knows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiecs_llm.providers import engine as _litellm
from aiecs_llm.transport.base import ChunkStream, ModelResponse

if TYPE_CHECKING:
    from aiecs_llm.transport.call import PreparedCall


class LiteLLMTransport:
    """Sends calls through ``litellm.acompletion`` over the client's own HTTP clients."""

    async def send(self, call: PreparedCall, *, timeout: float) -> ModelResponse:
        """LiteLLM's ``ModelResponse``."""
        return await _litellm.litellm().acompletion(**_arguments(call, timeout))

    async def stream(self, call: PreparedCall, *, timeout: float) -> ChunkStream:
        """LiteLLM's ``CustomStreamWrapper`` (``call.params`` asks for a stream)."""
        stream: ChunkStream = await _litellm.litellm().acompletion(**_arguments(call, timeout))
        return stream

    async def close(self) -> None:
        """Nothing to release: the HTTP clients belong to the client's ``Targets``."""


def _arguments(call: PreparedCall, timeout: float) -> dict[str, Any]:
    arguments = dict(call.params, timeout=timeout)
    if call.http_client is not None:
        arguments["client"] = call.http_client
    return arguments
