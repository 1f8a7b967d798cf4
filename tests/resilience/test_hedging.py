"""Hedged calls: a slow first request gets a second one, the first answer wins."""

import asyncio

import pytest
from structlog.testing import capture_logs

import aiecs_llm
from aiecs_llm import LiteLLMClient, LLMMessage
from aiecs_llm.resilience.hedging import HEDGE_MIN_SAMPLES, LatencyTracker, hedged
from tests.fake_provider import Reply
from tests.servers import settings_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]
CHAIN = {"openai/gpt-4o-mini": ["anthropic/claude-haiku-4-5"]}


async def test_a_slow_first_request_is_hedged_and_the_fast_one_wins(server):
    server.enqueue(Reply.ok("slow", delay=10.0), Reply.ok("fast"))
    settings = settings_for(server, fallbacks=CHAIN, hedge_delay=0.2)
    with capture_logs() as events:
        async with LiteLLMClient("openai/gpt-4o-mini", settings=settings, hedge=True) as client:
            response = await client.generate_text(MESSAGES)
    assert response.content == "fast"
    assert response.provider == "anthropic"
    assert response.fallback_from == "openai/gpt-4o-mini"
    assert 0.2 <= response.response_time < 5.0  # the hedge's, not the slow one's 10 s
    assert [request.provider for request in server.requests] == ["openai", "anthropic"]
    names = [event["event"] for event in events]
    assert "llm.request.hedged" in names
    assert "llm.request.cancelled" in names  # the loser is accounted


async def test_a_fast_first_request_sends_no_second(server):
    # Fast next to the hedge delay: a few milliseconds against 30 s, on a busy machine too.
    settings = settings_for(server, fallbacks=CHAIN, hedge_delay=30.0)
    async with LiteLLMClient("openai/gpt-4o-mini", settings=settings) as client:
        response = await client.generate_text(MESSAGES, hedge=True)
    assert response.provider == "openai"
    assert len(server.requests) == 1


async def test_hedging_is_off_unless_asked(server):
    server.enqueue(Reply.ok("slow but only", delay=0.5))
    settings = settings_for(server, fallbacks=CHAIN, hedge_delay=0.1)
    async with LiteLLMClient("openai/gpt-4o-mini", settings=settings) as client:
        response = await client.generate_text(MESSAGES)
    assert response.content == "slow but only"
    assert len(server.requests) == 1


async def test_when_both_fail_the_first_error_is_raised():
    async def slow_failure():
        await asyncio.sleep(0.05)
        raise aiecs_llm.ModelNotFoundError("first")

    async def fast_failure():
        raise aiecs_llm.ProviderNotAvailableError("second")

    async def release(_):
        raise AssertionError("nothing to release")

    with pytest.raises(aiecs_llm.ModelNotFoundError):
        await hedged(slow_failure, fast_failure, delay=0.01, release=release, label="m")


def test_delay_is_the_percentile_of_recent_latencies():
    tracker = LatencyTracker(percentile=0.95, default_delay=2.0)
    assert tracker.delay("m") == 2.0
    for value in range(1, HEDGE_MIN_SAMPLES * 5 + 1):  # 1..100
        tracker.record("m", value / 100)
    assert tracker.delay("m") == pytest.approx(0.95)
    assert tracker.delay("other") == 2.0
