"""Health checks, key validation and the spec's safe_generate_text, against the local server."""

import pytest

import aiecs_llm
from aiecs_llm import LLMMessage, LLMSettings, health_check, validate_api_key
from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.config.settings import ProviderSettings
from tests.fake_provider import Reply
from tests.servers import base_url, client_for, settings_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]


async def test_health_check_reports_every_provider(server):
    settings = settings_for(server)
    report = await health_check(settings)
    assert set(report) == {"openai", "anthropic", "google"}
    for name, health in report.items():
        assert health.key_present
        assert health.key_fingerprint == fingerprint(f"test-key-{name}-0000000000")
        assert health.live is True
        assert health.latency_ms > 0
        assert health.error is None
        assert "test-key" not in repr(health)
    assert len(server.requests) == 3
    assert all(
        request.json.get("max_tokens", 1) == 1
        for request in server.requests
        if request.provider != "gemini"
    )


async def test_health_check_reports_a_rejected_key(server):
    server.enqueue(Reply.invalid_api_key(), Reply.invalid_api_key(), Reply.invalid_api_key())
    report = await health_check(settings_for(server))
    assert {health.live for health in report.values()} == {False}
    assert all(health.error.startswith("AuthenticationError") for health in report.values())


async def test_health_check_without_live_sends_nothing(server):
    report = await health_check(settings_for(server), live=False)
    assert all(health.live is None for health in report.values())
    assert server.requests == []


async def test_unconfigured_provider_is_reported_not_checked(server, monkeypatch):
    settings = LLMSettings(
        providers={"openai": ProviderSettings(base_url=server.openai_base, api_key="sk-x-1234")}
    )
    report = await health_check(settings)
    assert report["openai"].live is True
    assert report["anthropic"].key_present is False
    assert report["anthropic"].live is None


async def test_validate_api_key(server):
    assert await validate_api_key(
        "openai", "sk-good-123456789", base_url=base_url(server, "openai")
    )
    server.enqueue(Reply.invalid_api_key())
    assert not await validate_api_key(
        "anthropic", "sk-ant-bad-123456789", base_url=base_url(server, "anthropic")
    )


async def test_validate_api_key_names_known_providers():
    with pytest.raises(aiecs_llm.ConfigurationError, match="openai, anthropic, google"):
        await validate_api_key("mistral", "key")


async def test_safe_generate_text_waits_out_one_rate_limit(server):
    server.enqueue(Reply.rate_limited(retry_after_ms=50), Reply.ok("after the wait"))
    async with client_for(server, "openai", max_retries=0) as client:
        response = await client.safe_generate_text(MESSAGES)
    assert response.content == "after the wait"


async def test_safe_generate_text_returns_none_when_the_provider_is_down(server):
    server.enqueue(Reply.unavailable())
    async with client_for(server, "anthropic", max_retries=0) as client:
        assert await client.safe_generate_text(MESSAGES) is None


async def test_safe_generate_text_raises_other_errors(server):
    server.enqueue(Reply.invalid_api_key())
    async with client_for(server, "google", max_retries=0) as client:
        with pytest.raises(aiecs_llm.AuthenticationError):
            await client.safe_generate_text(MESSAGES)
