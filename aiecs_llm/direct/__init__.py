"""The direct transport: OpenAI, Anthropic and Gemini (AI Studio) calls sent over one shared
aiohttp session per client, with LiteLLM's parameter mapping, error classes and prices but without
``litellm.acompletion``'s per-call machinery. Calls it does not handle (other providers, other
parameters) go through LiteLLM as before. ``docs/benchmarks.md`` says what it buys and why.

``LLM_DIRECT_TRANSPORT=0`` turns it off: every call then goes through ``litellm.acompletion``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiecs_llm.client.request import PreparedCall
    from aiecs_llm.direct.transport import Transport

ENABLE_ENV = "LLM_DIRECT_TRANSPORT"
PROVIDERS = frozenset({"openai", "anthropic", "gemini"})
"""LiteLLM providers whose wire format this path speaks."""
HANDLED_PARAMETERS = frozenset(
    {
        "model",
        "messages",
        "num_retries",
        "max_retries",
        "temperature",
        "max_tokens",
        "api_key",
        "api_base",
        "stream",
        "stream_options",
    }
)
"""The call parameters this path maps; a call with any other (``tools``, ``response_format``,
...) goes through ``litellm.acompletion``, which knows every provider's spelling of them."""


def enabled() -> bool:
    """Whether clients made now use the direct transport (on unless ``LLM_DIRECT_TRANSPORT=0``)."""
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class DirectTransport:
    """A client's direct transport; aiohttp and the wire formats load on its first call."""

    def __init__(self) -> None:
        self._transport: Transport | None = None

    def handles(self, call: PreparedCall) -> bool:
        """Whether this call can go direct (a known wire format, only parameters we map)."""
        return (
            call.litellm_provider in PROVIDERS
            and call.params.get("api_key") is not None
            and HANDLED_PARAMETERS.issuperset(call.params)
        )

    async def send(self, call: PreparedCall, *, timeout: float) -> Any:
        """The answer or, for a stream, an async iterator of chunks, shaped like LiteLLM's;
        failures raise the exception ``litellm.acompletion`` would have raised.
        """
        if self._transport is None:
            from aiecs_llm.direct.transport import Transport

            self._transport = Transport()
        return await self._transport.send(call, timeout=timeout)

    async def close(self) -> None:
        """Close the HTTP sessions opened so far."""
        if self._transport is not None:
            await self._transport.close()


__all__ = ["ENABLE_ENV", "DirectTransport", "enabled"]
