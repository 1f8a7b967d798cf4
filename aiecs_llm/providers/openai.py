"""OpenAI, and any server that speaks the OpenAI chat completions API (give ``base_url``)."""

from __future__ import annotations

from typing import ClassVar

from aiecs_llm.provider_spec import ProviderSpec
from aiecs_llm.providers.base import ProviderClient

OPENAI = ProviderSpec(
    name="openai",
    litellm_provider="openai",
    api_key_env="OPENAI_API_KEY",
    default_model="gpt-4o-mini",
    default_base_url="https://api.openai.com/v1",
    http_client="openai_sdk",
)


class OpenAIClient(ProviderClient):
    """OpenAI chat models: ``gpt-4o-mini``, ``o3-mini``, ... Key from ``OPENAI_API_KEY``,
    base URL from ``OPENAI_BASE_URL``.
    """

    spec: ClassVar[ProviderSpec] = OPENAI
