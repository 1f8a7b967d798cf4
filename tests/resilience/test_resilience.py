"""Fallbacks, key rotation, the circuit breaker and limits, through the public API, against the
local fault-injecting server."""

import asyncio
import time

import pytest
from structlog.testing import capture_logs

import aiecs_llm
from aiecs_llm import LiteLLMClient, LLMMessage
from aiecs_llm.client import litellm_client
from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.resilience import retry, state
from tests.fake_provider import Reply
from tests.servers import settings_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]
CHAIN = ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)


async def test_fallback_chain_across_providers(server):
    server.enqueue(
        Reply.model_not_found(), Reply.unavailable(), Reply.unavailable(), Reply.ok("from gemini")
    )
    settings = settings_for(server, fallbacks={"openai/gpt-4o": CHAIN})
    with capture_logs() as events:
        async with LiteLLMClient("openai/gpt-4o", settings=settings, max_retries=1) as client:
            response = await client.generate_text(MESSAGES)
    assert response.content == "from gemini"
    assert response.provider == "google"
    assert response.fallback_used
    assert response.fallback_from == "openai/gpt-4o"
    assert [request.provider for request in server.requests] == [
        "openai",
        "anthropic",
        "anthropic",
        "gemini",
    ]
    fallbacks = [event for event in events if event["event"] == "llm.request.fallback"]
    assert [event["reason"] for event in fallbacks] == [
        "ModelNotFoundError",
        "ProviderNotAvailableError",
    ]


async def test_spec_style_fallback_by_bare_name(server):
    server.enqueue(Reply.model_not_found(), Reply.ok("from the smaller model"))
    settings = settings_for(server, fallbacks={"gpt-4": ["gpt-3.5-turbo"]})
    async with aiecs_llm.OpenAIClient(settings=settings, max_retries=0) as client:
        response = await client.generate_text(MESSAGES, model="gpt-4")
    assert response.content == "from the smaller model"
    assert [request.model for request in server.requests] == ["gpt-4", "gpt-3.5-turbo"]
    assert response.fallback_from == "openai/gpt-4"


async def test_exhausted_rate_limits_fall_back(server):
    server.enqueue(
        Reply.rate_limited(retry_after_ms=10),
        Reply.rate_limited(retry_after_ms=10),
        Reply.ok("next provider"),
    )
    settings = settings_for(server, fallbacks={"openai/gpt-4o": CHAIN})
    async with LiteLLMClient("openai/gpt-4o", settings=settings, max_retries=1) as client:
        response = await client.generate_text(MESSAGES)
    assert response.provider == "anthropic"


async def test_context_window_moves_to_a_larger_model(server):
    # gpt-4o-mini and gpt-4o hold 128k tokens; gemini-2.5-flash holds 1M.
    server.enqueue(Reply.context_length_exceeded(), Reply.ok("read it all"))
    chain = ["openai/gpt-4o", "gemini/gemini-2.5-flash"]
    settings = settings_for(server, fallbacks={"openai/gpt-4o-mini": chain})
    async with LiteLLMClient("openai/gpt-4o-mini", settings=settings) as client:
        response = await client.generate_text(MESSAGES)
    assert response.provider == "google"
    assert [request.provider for request in server.requests] == ["openai", "gemini"]


async def test_context_window_without_a_larger_model_raises(server):
    server.enqueue(Reply.context_length_exceeded())
    settings = settings_for(server, fallbacks={"openai/gpt-4o-mini": ["openai/gpt-4o"]})
    async with LiteLLMClient("openai/gpt-4o-mini", settings=settings) as client:
        with pytest.raises(aiecs_llm.ContextWindowExceededError):
            await client.generate_text(MESSAGES)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "failure", [Reply.invalid_api_key(), Reply.context_length_exceeded()], ids=["401", "400"]
)
async def test_caller_errors_never_fall_back(server, failure):
    server.enqueue(failure)
    settings = settings_for(server, fallbacks={"anthropic/claude-sonnet-4-5": ["openai/gpt-4o"]})
    async with LiteLLMClient("anthropic/claude-sonnet-4-5", settings=settings) as client:
        with pytest.raises(aiecs_llm.LLMClientError):
            await client.generate_text(MESSAGES)
    assert len(server.requests) == 1


async def test_streams_fall_back_before_the_first_chunk(server):
    server.enqueue(Reply.unavailable(), Reply.ok("streamed by the fallback", chunks=3))
    settings = settings_for(server, fallbacks={"openai/gpt-4o": CHAIN})
    async with LiteLLMClient("openai/gpt-4o", settings=settings, max_retries=0) as client:
        stream = client.stream_text(MESSAGES)
        text = "".join([chunk async for chunk in stream])
    assert text == "streamed by the fallback"
    assert stream.response.provider == "anthropic"
    assert stream.response.fallback_from == "openai/gpt-4o"


KEYS = [
    "sk-rotation-key-one-000000000",
    "sk-rotation-key-two-000000000",
    "sk-rotation-key-three-0000000",
]


async def test_keys_rotate_round_robin(server):
    settings = settings_for(server, keys={"openai": KEYS})
    async with aiecs_llm.OpenAIClient(settings=settings) as client:
        for _ in range(4):
            await client.generate_text(MESSAGES)
    used = [request.headers["authorization"].removeprefix("Bearer ") for request in server.requests]
    assert used == [KEYS[0], KEYS[1], KEYS[2], KEYS[0]]


async def test_a_rate_limited_key_cools_down_and_the_next_is_used_at_once(server):
    server.enqueue(Reply.rate_limited(retry_after="30"), Reply.ok("second key"))
    settings = settings_for(server, keys={"openai": KEYS})
    async with aiecs_llm.OpenAIClient(settings=settings, max_retries=1) as client:
        started = time.monotonic()
        with capture_logs() as events:
            response = await client.generate_text(MESSAGES)
        assert time.monotonic() - started < 20  # no 30 s wait: another key was ready
        (retrying,) = [event for event in events if event["event"] == "llm.request.retrying"]
        assert retrying["wait_seconds"] == 0  # at once, on the next key
        assert response.content == "second key"
        for _ in range(3):
            await client.generate_text(MESSAGES)
    used = [request.headers["authorization"].removeprefix("Bearer ") for request in server.requests]
    assert used[:2] == KEYS[:2]
    assert KEYS[0] not in used[2:]  # still cooling


async def test_a_rejected_key_leaves_the_rotation_with_one_error_log(server):
    server.enqueue(Reply.invalid_api_key(), Reply.ok())
    settings = settings_for(server, keys={"openai": KEYS})
    with capture_logs() as events:
        async with aiecs_llm.OpenAIClient(settings=settings, max_retries=1) as client:
            for _ in range(5):
                await client.generate_text(MESSAGES)
    used = [request.headers["authorization"].removeprefix("Bearer ") for request in server.requests]
    assert used.count(KEYS[0]) == 1
    rejected = [event for event in events if event["event"] == "llm.key.rejected"]
    assert len(rejected) == 1
    assert rejected[0]["key"] == fingerprint(KEYS[0])
    assert all(key[:12] not in repr(events) for key in KEYS)


async def test_numbered_environment_keys_rotate(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY_1", KEYS[1])
    monkeypatch.setenv("OPENAI_API_KEY_2", KEYS[2])
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base)
    async with aiecs_llm.OpenAIClient() as client:
        for _ in range(3):
            await client.generate_text(MESSAGES)
    used = {request.headers["authorization"].removeprefix("Bearer ") for request in server.requests}
    assert {KEYS[1], KEYS[2]} <= used


async def test_a_failing_route_opens_its_circuit_and_recovers(server):
    settings = settings_for(server, breaker_failures=3, breaker_cooldown=0.3)
    server.enqueue(*[Reply.server_error()] * 3)
    async with aiecs_llm.AnthropicClient(settings=settings, max_retries=0) as client:
        for _ in range(3):
            with pytest.raises(aiecs_llm.ProviderNotAvailableError):
                await client.generate_text(MESSAGES)
        with pytest.raises(aiecs_llm.CircuitOpenError) as caught:
            await client.generate_text(MESSAGES)
        assert len(server.requests) == 3  # skipped: nothing sent
        assert caught.value.retry_after > 0
        circuits = state.DEFAULT_STATE.snapshot()["circuits"]
        (health,) = circuits.values()
        assert health.state == "open"
        await asyncio.sleep(0.35)
        response = await client.generate_text(MESSAGES)  # the probe
        assert response.content
    (health,) = state.DEFAULT_STATE.snapshot()["circuits"].values()
    assert health.state == "closed"


async def test_an_open_circuit_goes_straight_to_the_fallback(server):
    settings = settings_for(server, breaker_failures=1, fallbacks={"openai/gpt-4o": CHAIN})
    server.enqueue(Reply.server_error(), Reply.ok("anthropic answers"))
    async with LiteLLMClient("openai/gpt-4o", settings=settings, max_retries=0) as client:
        first = await client.generate_text(MESSAGES)
        second = await client.generate_text(MESSAGES)
    assert first.provider == second.provider == "anthropic"
    # The second call never tried OpenAI: its circuit was open.
    assert [request.provider for request in server.requests] == ["openai", "anthropic", "anthropic"]


async def test_client_concurrency_limit(server):
    server.default = Reply.ok(delay=0.2)
    settings = settings_for(server, max_concurrency=2)
    async with aiecs_llm.OpenAIClient(settings=settings) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.generate_text(MESSAGES) for _ in range(6)))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.6  # three waves of two
    assert len(server.requests) == 6


async def test_provider_concurrency_is_shared_by_clients(server):
    server.default = Reply.ok(delay=0.2)
    settings = settings_for(server, provider_limits={"openai": {"max_concurrency": 1}})
    async with (
        aiecs_llm.OpenAIClient(settings=settings) as one,
        aiecs_llm.OpenAIClient(settings=settings) as two,
    ):
        started = time.monotonic()
        await asyncio.gather(*(client.generate_text(MESSAGES) for client in (one, two, one)))
    assert time.monotonic() - started >= 0.6


async def test_rate_limit_makes_callers_wait_in_a_bounded_queue(server):
    settings = settings_for(
        server, provider_limits={"openai": {"requests_per_minute": 1}}, rate_limit_queue=1
    )
    async with aiecs_llm.OpenAIClient(settings=settings) as client:
        await client.generate_text(MESSAGES)  # spends the minute's one request
        waiting = asyncio.create_task(client.generate_text(MESSAGES))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # waits, does not fail
        with pytest.raises(aiecs_llm.RateLimitError, match="queue"):
            await client.generate_text(MESSAGES)  # the queue (1) is full: fails at once
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert len(server.requests) == 1


async def test_cancelled_calls_release_their_slots(server):
    server.enqueue(Reply.hang(), Reply.hang())
    settings = settings_for(server, max_concurrency=1)
    async with aiecs_llm.OpenAIClient(settings=settings) as client:
        task = asyncio.create_task(client.generate_text(MESSAGES))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stream = client.stream_text(MESSAGES)
        stream_task = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.2)
        stream_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stream_task
        # The only slot is free again: this call does not wait behind the cancelled ones
        # (which hang for ever: the bound is a deadline, not a speed).
        response = await asyncio.wait_for(client.generate_text(MESSAGES), timeout=30)
        assert response.content
        (limit,) = client._targets.concurrency_limits()
        assert limit.in_use == 0


async def test_a_silent_stream_fails_instead_of_hanging(server):
    server.enqueue(Reply.ok("a b c d e f", chunks=6, chunk_delay=3.0))
    settings = settings_for(server, stream_idle_timeout=0.3)
    async with aiecs_llm.GoogleAIClient(settings=settings, max_retries=0) as client:
        stream = client.stream_text(MESSAGES)
        started = time.monotonic()
        with pytest.raises(aiecs_llm.LLMClientError) as caught:
            async for _ in stream:
                pass
    assert time.monotonic() - started < 10  # the whole stream would take 15 s
    assert "silent" in caught.value.message


async def test_context_window_prefers_the_smallest_window_that_holds_it(server):
    server.enqueue(Reply.context_length_exceeded(), Reply.ok("read it all"))
    chain = ["gemini/gemini-2.5-flash", "anthropic/claude-haiku-4-5"]  # 1M, then 200k
    settings = settings_for(server, fallbacks={"openai/gpt-4o-mini": chain})
    async with LiteLLMClient("openai/gpt-4o-mini", settings=settings) as client:
        response = await client.generate_text(MESSAGES)
    assert response.provider == "anthropic"


async def test_deprecated_models_warn_naming_the_successor(server, monkeypatch):
    # LiteLLM's map retires claude-sonnet-4-5 on 2026-11-30, succeeded by claude-sonnet-5-5.
    monkeypatch.setattr(litellm_client, "_warned_deprecated", set())
    async with aiecs_llm.AnthropicClient(settings=settings_for(server)) as client:
        with capture_logs() as events:
            await client.generate_text(MESSAGES, model="claude-sonnet-4-5")
    (warning,) = [event for event in events if event["event"] == "llm.model.deprecated"]
    assert "claude-sonnet-5-5" in warning["detail"]
