"""Clients pointed at the local fake provider server, one per registered provider."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from aiecs_llm import PROVIDERS
from aiecs_llm.client.named import ProviderClient
from aiecs_llm.config.settings import LLMSettings, ProviderSettings, Resilience
from tests.fake_provider import FakeProviderServer

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.5-flash"}


def base_url(server: FakeProviderServer, provider: str) -> str:
    return {
        "openai": server.openai_base,
        "anthropic": server.anthropic_base,
        "google": server.gemini_base,
    }[provider]


def client_for(server: FakeProviderServer, provider: str, **options: Any) -> ProviderClient:
    options.setdefault("model", MODELS[provider])
    return PROVIDERS[provider](
        api_key="test-key-for-fake-server", base_url=base_url(server, provider), **options
    )


def settings_for(
    server: FakeProviderServer,
    *,
    fallbacks: dict[str, list[str]] | None = None,
    keys: dict[str, list[str]] | None = None,
    provider_limits: dict[str, dict[str, int]] | None = None,
    **resilience: Any,
) -> LLMSettings:
    """Settings whose three providers all point at the fake server."""
    providers = {}
    for name in PROVIDERS:
        provider_keys = (keys or {}).get(name) or [f"test-key-{name}-0000000000"]
        providers[name] = ProviderSettings(
            api_keys=[SecretStr(key) for key in provider_keys],
            base_url=base_url(server, name),
            **(provider_limits or {}).get(name, {}),
        )
    return LLMSettings(
        providers=providers,
        fallbacks=fallbacks or {},
        resilience=Resilience(**resilience),
    )
