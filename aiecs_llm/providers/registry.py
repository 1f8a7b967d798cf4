"""The provider registry: one row of data per provider the library names.

Adding a provider means one row here, one client class in ``aiecs_llm.client.named``, one
cassette set and one line in ``docs/providers.md``. Any other LiteLLM provider works without a
row, through ``LiteLLMClient`` and its model string.
"""

from __future__ import annotations

from aiecs_llm.providers.spec import ProviderSpec

OPENAI = ProviderSpec(
    name="openai",
    client_class="OpenAIClient",
    litellm_provider="openai",
    api_key_env="OPENAI_API_KEY",
    default_model="gpt-4o-mini",
    default_base_url="https://api.openai.com/v1",
    http_client="openai_sdk",
)
ANTHROPIC = ProviderSpec(
    name="anthropic",
    client_class="AnthropicClient",
    litellm_provider="anthropic",
    api_key_env="ANTHROPIC_API_KEY",
    default_model="claude-sonnet-4-5",
    default_base_url="https://api.anthropic.com",
    http_client="litellm_httpx",
)
GOOGLE = ProviderSpec(
    name="google",
    client_class="GoogleAIClient",
    litellm_provider="gemini",
    api_key_env="GOOGLE_AI_API_KEY",
    default_model="gemini-2.5-flash",
    default_base_url="https://generativelanguage.googleapis.com",
    http_client="litellm_httpx",
)

SPECS: dict[str, ProviderSpec] = {spec.name: spec for spec in (OPENAI, ANTHROPIC, GOOGLE)}
"""Our provider name -> its facts."""

SPECS_BY_LITELLM_PROVIDER: dict[str, ProviderSpec] = {
    spec.litellm_provider: spec for spec in SPECS.values()
}
"""LiteLLM's provider prefix -> the registered provider behind it."""
