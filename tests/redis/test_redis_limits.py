"""SharedRateLimiter against a real redis-server: one bucket for every replica, served in
order, local limits while Redis is away and the shared bucket again once it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from aiecs_llm.errors import InvalidRequestError, RateLimitError
from aiecs_llm.redis.connection import RedisConnection
from aiecs_llm.redis.limits import SharedRateLimiter
from aiecs_llm.resilience.limits import RateLimiter
from tests.redis_server import RedisServer

KEY = "aiecs_llm:rate:test:account"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def replica(url: str, **figures: int) -> SharedRateLimiter:
    """The limiter one replica has: its own connection, the account's shared bucket."""
    return SharedRateLimiter(RedisConnection(url), KEY, RateLimiter(name="test", **figures))


async def drain(limiter: SharedRateLimiter, requests: int) -> None:
    await asyncio.gather(*(limiter.acquire() for _ in range(requests)))


async def test_replicas_share_one_request_bucket(redis):
    first, second = (
        replica(redis.url, requests_per_minute=1200),
        replica(redis.url, requests_per_minute=1200),
    )
    await drain(first, 1200)  # the minute's requests are used up, by either replica
    started = time.monotonic()
    waits = await asyncio.gather(*((first, second)[i % 2].acquire() for i in range(20)))
    elapsed = time.monotonic() - started
    # 20 more at 20/s take about a second, whichever replica asks; the refill during the drain
    # may have left a few credits, never more than the time the drain took.
    assert 0.7 < elapsed < 3.0
    assert max(w.waited for w in waits) > 0.6


async def test_tokens_are_shared_and_settled(redis):
    first, second = (
        replica(redis.url, tokens_per_minute=6000),
        replica(redis.url, tokens_per_minute=6000),
    )
    reservation = await first.acquire(6000)
    reservation.settle(100)  # gives 5900 back, shared
    await asyncio.sleep(0.2)  # the correction is written in the background
    started = time.monotonic()
    await second.acquire(5000)
    assert time.monotonic() - started < 5.0  # without the refund: 49 s
    with pytest.raises(InvalidRequestError, match="can never fit"):
        await second.acquire(6001)


async def test_a_full_queue_fails_at_once_with_retry_after(redis):
    limiter = SharedRateLimiter(
        RedisConnection(redis.url), KEY, RateLimiter(requests_per_minute=60, max_waiting=5)
    )
    await drain(limiter, 60)
    waiting = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
    await asyncio.sleep(0.1)
    with pytest.raises(RateLimitError) as full:
        await limiter.acquire()
    assert full.value.retry_after is not None
    assert full.value.retry_after > 4.0
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_cancelled_waiters_give_their_turns_back(redis):
    limiter = replica(redis.url, requests_per_minute=60)
    await drain(limiter, 60)
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]  # 1 s to 5 s each
    await asyncio.sleep(0.1)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await limiter.acquire()
    # Without the refunds this caller would wait ~6 s (its own second and five cancelled ones).
    assert time.monotonic() - started < 3.0


async def test_local_limits_while_redis_is_away_then_shared_again():
    server = RedisServer()
    limiter = replica(server.url, requests_per_minute=600)
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()  # the local bucket, full at first
    assert time.monotonic() - started < 3.0
    assert limiter.local.requests_per_minute == 600
    with server:
        await asyncio.sleep(limiter.connection.retry_in() + 0.05)
        await limiter.acquire()
        level = await limiter.connection.run(lambda client: client.hget(KEY, "r"))
    assert float(level) == pytest.approx(599, abs=1)  # the shared bucket took this one
