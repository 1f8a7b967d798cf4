"""Clients pointed at the local fake provider server, one per registered provider."""

from __future__ import annotations

from typing import Any

from aiecs_llm import PROVIDERS
from aiecs_llm.providers import ProviderClient
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
