"""Anthropic's Claude models through the Messages API."""

from __future__ import annotations

from typing import ClassVar

from aiecs_llm.provider_spec import ProviderSpec
from aiecs_llm.providers.base import ProviderClient

ANTHROPIC = ProviderSpec(
    name="anthropic",
    litellm_provider="anthropic",
    api_key_env="ANTHROPIC_API_KEY",
    default_model="claude-sonnet-4-5",
    default_base_url="https://api.anthropic.com",
    http_client="litellm_httpx",
)


class AnthropicClient(ProviderClient):
    """Claude models: ``claude-sonnet-4-5``, ``claude-haiku-4-5``, ... Key from
    ``ANTHROPIC_API_KEY``.
    """

    spec: ClassVar[ProviderSpec] = ANTHROPIC
