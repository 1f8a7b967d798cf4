"""``BaseLLMClient``: the interface every provider client implements (the AIECS design document,
section 5).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import structlog

from aiecs_llm.accounting import pricing
from aiecs_llm.errors import LLMClientError, ProviderNotAvailableError, RateLimitError
from aiecs_llm.resilience.retry import MAX_RETRY_AFTER
from aiecs_llm.types import LLMMessage, LLMResponse

SAFE_RETRY_DELAY = 1.0
"""Seconds ``safe_generate_text`` waits after a rate limit that named no wait (the spec's 1 s)."""

_log = structlog.get_logger("aiecs_llm")


class BaseLLMClient(ABC):
    """One LLM provider behind the common interface.

    Use it as an async context manager, or call ``close()`` when done, so that its HTTP
    connections are released.
    """

    def __init__(self, provider_name: str) -> None:
        self.provider_name = provider_name

    @abstractmethod
    async def generate_text(
        self,
        messages: Sequence[LLMMessage],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """Send the conversation and return the whole answer."""

    @abstractmethod
    def stream_text(
        self,
        messages: Sequence[LLMMessage],
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[str]:
        """Send the conversation and yield the answer's text as it arrives."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; calling it again does nothing."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def safe_generate_text(
        self, messages: Sequence[LLMMessage], **kwargs: Any
    ) -> LLMResponse | None:
        """The spec's forgiving call: a rate limit is waited out once, an unavailable provider
        gives None instead of an error, and anything else raises an ``LLMClientError``.
        """
        try:
            return await self.generate_text(messages, **kwargs)
        except RateLimitError as error:
            wait = min(error.retry_after or SAFE_RETRY_DELAY, MAX_RETRY_AFTER)
            _log.warning("llm.safe_generate.rate_limited", wait_seconds=wait, detail=error.message)
            await asyncio.sleep(wait)
            return await self.generate_text(messages, **kwargs)
        except ProviderNotAvailableError as error:
            _log.error("llm.safe_generate.unavailable", error=type(error).__name__)
            return None
        except LLMClientError:
            raise
        except Exception as exc:  # the spec's boundary: anything else becomes an LLMClientError
            raise LLMClientError(f"Text generation failed: {exc}") from exc

    def _count_tokens_estimate(self, text: str) -> int:
        """Rough token count, about four characters a token; needs no tokenizer."""
        return pricing.estimate_tokens(text)

    def _count_tokens_accurate(self, text: str, model: str) -> int:
        """Token count by the model's own tokenizer, through LiteLLM."""
        return pricing.count_tokens(model, text=text)

    def _estimate_cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        token_costs: Mapping[str, Mapping[str, float]],
    ) -> float:
        """The spec's estimate: prices in ``token_costs`` are USD per 1,000 tokens; a model that
        is not in the table costs 0.0.
        """
        if model not in token_costs:
            return 0.0
        return pricing.price_per_1k(input_tokens, output_tokens, token_costs[model])
