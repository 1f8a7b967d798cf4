"""The named provider clients (``OpenAIClient``, ``AnthropicClient``, ``GoogleAIClient``), the
``PROVIDERS`` table of them, and ``create_client``, the factory that reads it.

Each class is a ``LiteLLMClient`` bound to one row of ``aiecs_llm.providers.registry``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiecs_llm.client.litellm_client import LiteLLMClient
from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.providers.registry import ANTHROPIC, GOOGLE, OPENAI
from aiecs_llm.providers.spec import ProviderSpec


class ProviderClient(LiteLLMClient):
    """A client bound to one provider: model names need no prefix, the key comes first."""

    spec: ClassVar[ProviderSpec]

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        model: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: LLMSettings | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            model,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            settings=settings,
            **options,
        )


class OpenAIClient(ProviderClient):
    """OpenAI chat models: ``gpt-4o-mini``, ``o3-mini``, ... Key from ``OPENAI_API_KEY``,
    base URL from ``OPENAI_BASE_URL``. Also any server that speaks the OpenAI chat completions
    API (give ``base_url``).
    """

    spec: ClassVar[ProviderSpec] = OPENAI


class AnthropicClient(ProviderClient):
    """Claude models through the Messages API: ``claude-sonnet-4-5``, ``claude-haiku-4-5``, ...
    Key from ``ANTHROPIC_API_KEY``.
    """

    spec: ClassVar[ProviderSpec] = ANTHROPIC


class GoogleAIClient(ProviderClient):
    """Gemini models through Google AI Studio (``generateContent``): ``gemini-2.5-flash``,
    ``gemini-2.5-pro``, ... Key from ``GOOGLE_AI_API_KEY`` (or ``GEMINI_API_KEY``).
    """

    spec: ClassVar[ProviderSpec] = GOOGLE


PROVIDERS: dict[str, type[ProviderClient]] = {
    "openai": OpenAIClient,
    "anthropic": AnthropicClient,
    "google": GoogleAIClient,
}


def create_client(model_or_provider: str | None = None, **options: Any) -> LiteLLMClient:
    """A client for a provider name (``"anthropic"``) or any LiteLLM model string
    (``"gemini/gemini-2.5-flash"``, ``"groq/llama-3.1-8b-instant"``).

    With a model string the result uses that model by default, so switching provider is a
    change of this one string in config. ``None`` means ``LLM_DEFAULT_MODEL`` / the config file.
    ``options`` go to the client's constructor (``api_key``, ``base_url``, ``timeout``, ...).
    """
    if model_or_provider is None:
        return LiteLLMClient(**options)
    if not model_or_provider.strip():
        raise ConfigurationError("create_client() needs a provider name or a model string")
    if model_or_provider in PROVIDERS:
        return PROVIDERS[model_or_provider](**options)
    prefix = model_or_provider.split("/", 1)[0]
    for client_class in PROVIDERS.values():
        if "/" in model_or_provider and client_class.spec.litellm_provider == prefix:
            return client_class(model=model_or_provider, **options)
    return LiteLLMClient(model_or_provider, **options)
