"""RedisState, RedisCache and the connection against a real redis-server: what one replica
learns about routes and keys reaches the others; the cache is shared; outages are survived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from aiecs_llm.accounting.cache_store import CachedResponse
from aiecs_llm.client import shared
from aiecs_llm.client.litellm_client import LiteLLMClient
from aiecs_llm.config.settings import (
    Budgets,
    CacheSettings,
    LLMSettings,
    ProviderSettings,
    Resilience,
    StateSettings,
)
from aiecs_llm.redis.budget import RedisBudget
from aiecs_llm.redis.cache import RedisCache
from aiecs_llm.redis.connection import RedisConnection, RedisUnavailable, redact_url
from aiecs_llm.redis.limits import SharedRateLimiter
from aiecs_llm.redis.state import RedisState
from aiecs_llm.resilience import state
from aiecs_llm.resilience.breaker import Route
from aiecs_llm.types import LLMMessage, LLMResponse
from tests.redis_server import RedisServer, free_port

RESILIENCE = Resilience(breaker_failures=2, breaker_cooldown=30.0, key_cooldown=30.0)
SETTLE = 30.0  # seconds a background write may take to reach Redis on a loaded machine
# A generous socket timeout, for the tests that are not about outages: a loaded machine must
# not look like one (the default, 1 s, is for a service's quick fallback).
PATIENT = "?socket_timeout=30"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition`` until it holds (what replicas publish is written in the background);
    fails after ``SETTLE`` seconds.
    """
    async with asyncio.timeout(SETTLE):
        while not await condition():  # noqa: ASYNC110 - the state polled is in Redis
            await asyncio.sleep(0.01)


def test_redact_url_hides_the_password():
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("rediss://user:s3cret@host/1") == "rediss://user:***@host/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def test_an_open_route_reaches_the_other_replicas(redis):
    first = RedisState(RedisConnection(redis.url + PATIENT))
    second = RedisState(RedisConnection(redis.url + PATIENT))
    route = Route("openai", "gpt-4o-mini")
    breaker_a, breaker_b = first.breaker(RESILIENCE), second.breaker(RESILIENCE)
    assert breaker_b.allow(route)
    opened = time.monotonic()
    breaker_a.record_failure(route)
    breaker_a.record_failure(route)
    assert breaker_a.state(route) == "open"

    async def closed_for_b() -> bool:  # published in the background
        await second.sync()
        return not breaker_b.allow(route)

    await until(closed_for_b)
    # The 30 s cooldown, less the time since it began (however long that took here).
    assert 30 - (time.monotonic() - opened) - 1 < breaker_b.retry_in(route) <= 30
    breaker_a._circuit(route).open_until = 0.0  # the cooldown is over: A's probe goes...
    assert breaker_a.allow(route)
    breaker_a.record_success(route)  # ...and closes the route for everyone

    async def forgotten() -> bool:
        return await first.connection.run(lambda c: c.exists(breaker_a.entry(route))) == 0

    await until(forgotten)


async def test_a_cooling_or_rejected_key_reaches_the_other_replicas(redis):
    keys = ["sk-test-key-one-0000000000000", "sk-test-key-two-0000000000000"]
    first = RedisState(RedisConnection(redis.url + PATIENT))
    second = RedisState(RedisConnection(redis.url + PATIENT))
    pool_a = first.key_pool("openai", keys, RESILIENCE)
    pool_b = second.key_pool("openai", keys, RESILIENCE)
    cooled = time.monotonic()
    pool_a.rate_limited(keys[0], 20.0)
    pool_a.rejected(keys[1])

    async def known_to_b() -> bool:  # published in the background
        await second.sync()
        return [s.state for s in pool_b.snapshot()] == ["cooling", "retired"]

    await until(known_to_b)
    # The 20 s asked for, less the time since (however long that took here).
    assert 20 - (time.monotonic() - cooled) - 1 < pool_b.snapshot()[0].cooling_for <= 20
    stored = await first.connection.run(lambda c: c.keys("*"))
    assert not any(key in name for name in stored for key in keys)  # fingerprints only


def settings_for(redis: RedisServer, base_url: str, **sections: object) -> LLMSettings:
    return LLMSettings(
        providers={
            "openai": ProviderSettings(
                api_key=SecretStr("sk-test-openai-0000000000000000"),
                base_url=base_url,
                requests_per_minute=600,
            )
        },
        state=StateSettings(url=SecretStr(redis.url + PATIENT)),
        **sections,  # type: ignore[arg-type]
    )


async def test_the_client_shares_state_budget_and_cache_through_redis(redis, server):
    settings = settings_for(
        redis,
        server.openai_base,
        budgets=Budgets(daily=1.0),
        cache=CacheSettings(backend="redis"),
    )
    first = LiteLLMClient("openai/gpt-4o-mini", settings=settings)
    assert isinstance(first._state, RedisState)
    assert first._state is shared.state_for(settings)
    assert isinstance(first.accounting.budget, RedisBudget)
    assert first.cache is not None
    assert isinstance(first.cache.backend, RedisCache)
    question = [LLMMessage(role="user", content="hello")]
    answer = await first.generate_text(question, temperature=0, max_tokens=16)
    limits = first._targets.target("openai/gpt-4o-mini").limits
    assert isinstance(limits.rate, SharedRateLimiter)
    await first.accounting.budget.flush()
    (status,) = await first.accounting.budget.status()
    assert status.spent == pytest.approx(answer.cost_estimate)
    # Another replica (another process: its own in-memory defaults) is answered from Redis.
    from aiecs_llm.client import shared as accounting

    accounting.DEFAULTS = accounting._Defaults()
    second = LiteLLMClient("openai/gpt-4o-mini", settings=settings)
    again = await second.generate_text(question, temperature=0, max_tokens=16)
    assert again.cached
    assert len(server.requests) == 1
    assert repr(settings).count(redis.url) == 0


def test_without_a_state_url_the_state_stays_in_process():
    assert shared.state_for(LLMSettings()) is state.DEFAULT_STATE


async def test_redis_cache_stores_expires_and_clears(redis):
    cache = RedisCache(RedisConnection(redis.url + PATIENT))
    entry = CachedResponse(
        LLMResponse(content="hi", provider="openai", model="m", tokens_used=3), chunks=("h", "i")
    )
    set_at = time.monotonic()
    await cache.set("a", entry, ttl=1.0)
    await cache.set("b", entry, ttl=None)
    got = await cache.get("a")
    if time.monotonic() - set_at < 1.0:  # read before the TTL could have run out
        assert got is not None
        assert got.response.content == "hi"
        assert got.chunks == ("h", "i")
    assert await cache.get("b") is not None
    await asyncio.sleep(1.1)
    assert await cache.get("a") is None
    await cache.clear()
    assert await cache.get("b") is None
    await cache.connection.aclose()
    assert await cache.get("b") is None  # a closed connection is opened again on use


async def test_an_unreachable_redis_makes_the_cache_miss_and_recovers_by_itself():
    server = RedisServer()
    cache = RedisCache(RedisConnection(server.url))
    entry = CachedResponse(LLMResponse(content="hi", provider="openai", model="m"))
    with capture_logs() as logs:
        await cache.set("k", entry, ttl=None)  # dropped, not raised
        assert await cache.get("k") is None
        with server:
            await asyncio.sleep(cache.connection.retry_in() + 0.05)
            await cache.set("k", entry, ttl=None)
            assert await cache.get("k") is not None
    events = [e["event"] for e in logs]
    assert events.count("llm.state.unavailable") == 1
    assert events.count("llm.state.recovered") == 1


async def test_a_slow_redis_counts_as_unavailable(redis, monkeypatch):
    # A paused server (SIGSTOP) accepts connections but never answers.
    import os
    import signal

    from aiecs_llm.redis import connection as redis_connection

    # A first rest of a minute instead of half a second: the second command below comes well
    # within it however slowly this machine gets there.
    monkeypatch.setattr(redis_connection, "_FIRST_PAUSE", 60.0)
    connection = RedisConnection(redis.url + "?socket_timeout=1.5")
    await connection.run(lambda c: c.ping())
    assert redis._process is not None
    os.kill(redis._process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(RedisUnavailable) as first:
            await connection.run(lambda c: c.ping())  # sent; no answer within 1.5 s
        assert first.value.attempted
        with pytest.raises(RedisUnavailable) as second:
            await connection.run(lambda c: c.ping())
        assert not second.value.attempted  # resting: not sent, so no second timeout
    finally:
        os.kill(redis._process.pid, signal.SIGCONT)


def test_a_state_url_that_is_not_redis_is_refused():
    from aiecs_llm.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="redis://"):
        RedisConnection(f"http://user:pw@127.0.0.1:{free_port()}")


def test_importing_the_package_does_not_import_redis():
    import subprocess
    import sys

    code = "import sys, aiecs_llm; print(any(m.split('.')[0] == 'redis' for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_the_state_url_comes_from_the_environment_and_stays_secret(monkeypatch):
    monkeypatch.setenv("LLM_STATE_URL", "redis://:pa55word@127.0.0.1:6390/2")
    monkeypatch.setenv("LLM_BUDGET_FAIL_OPEN", "true")
    settings = LLMSettings.load()
    assert settings.state.url is not None
    assert settings.state.url.get_secret_value() == "redis://:pa55word@127.0.0.1:6390/2"
    assert settings.state.budget_fail_open
    assert "pa55word" not in repr(settings)
    assert "pa55word" not in repr(shared.state_for(settings))
