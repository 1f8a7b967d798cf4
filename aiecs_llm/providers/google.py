"""Google's Gemini models through Google AI Studio (``generateContent``)."""

from __future__ import annotations

from typing import ClassVar

from aiecs_llm.provider_spec import ProviderSpec
from aiecs_llm.providers.base import ProviderClient

GOOGLE = ProviderSpec(
    name="google",
    litellm_provider="gemini",
    api_key_env="GOOGLE_AI_API_KEY",
    default_model="gemini-2.5-flash",
    default_base_url="https://generativelanguage.googleapis.com",
    http_client="litellm_httpx",
)


class GoogleAIClient(ProviderClient):
    """Gemini models: ``gemini-2.5-flash``, ``gemini-2.5-pro``, ... Key from
    ``GOOGLE_AI_API_KEY`` (or ``GEMINI_API_KEY``).
    """

    spec: ClassVar[ProviderSpec] = GOOGLE
