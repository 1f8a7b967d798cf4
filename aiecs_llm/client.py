"""``BaseLLMClient``: the interface every provider client implements (the AIECS design document,
section 5).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiecs_llm import pricing
from aiecs_llm.types import LLMMessage, LLMResponse


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
