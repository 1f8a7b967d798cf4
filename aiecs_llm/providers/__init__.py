"""The provider registry: one table, and the factory that reads it.

Adding a provider means one module with its ``ProviderSpec`` and client class, one row here,
one cassette set and one line in ``docs/providers.md``.
"""

from __future__ import annotations

from typing import Any

from aiecs_llm.errors import ConfigurationError
from aiecs_llm.litellm_client import LiteLLMClient
from aiecs_llm.provider_spec import ProviderSpec
from aiecs_llm.providers.anthropic import AnthropicClient
from aiecs_llm.providers.base import ProviderClient
from aiecs_llm.providers.google import GoogleAIClient
from aiecs_llm.providers.openai import OpenAIClient

PROVIDERS: dict[str, type[ProviderClient]] = {
    "openai": OpenAIClient,
    "anthropic": AnthropicClient,
    "google": GoogleAIClient,
}

SPECS_BY_LITELLM_PROVIDER: dict[str, ProviderSpec] = {
    client.spec.litellm_provider: client.spec for client in PROVIDERS.values()
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
