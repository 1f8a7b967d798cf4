"""SharedRateLimiter against a real redis-server: one bucket for every replica, served in
order, local limits while Redis is away and the shared bucket again once it is back.

What is checked is what the bucket's rules promise, read from Redis itself (its level and the
time of its last update, on Redis' clock), never how long something took on a busy machine:
the waits the shared script hands out are computed by Redis, and how many requests a bucket
holds between two readings follows from its level then and now and the refill in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from aiecs_llm.errors import InvalidRequestError, RateLimitError
from aiecs_llm.redis.connection import RedisConnection
from aiecs_llm.redis.limits import SharedRateLimiter
from aiecs_llm.resilience.limits import RateLimiter
from tests.redis_server import RedisServer

KEY = "aiecs_llm:rate:test:account"
ROUNDING = 1e-5  # the script writes levels, times and waits with six decimals
SETTLE = 30.0  # seconds a background write may take to show in Redis on a loaded machine


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def replica(url: str, **figures: int) -> SharedRateLimiter:
    """The limiter one replica has: its own connection, the account's shared bucket."""
    # A generous socket timeout: a loaded machine must not look like a Redis outage here (the
    # fallback to local limits has a test of its own, below).
    connection = RedisConnection(url + "?socket_timeout=30")
    return SharedRateLimiter(connection, KEY, RateLimiter(name="test", **figures))


async def drain(limiter: SharedRateLimiter, requests: int) -> None:
    # In rounds the connection pool (32 per loop) serves without making callers queue for it.
    for first in range(0, requests, 25):
        await asyncio.gather(*(limiter.acquire() for _ in range(min(25, requests - first))))


async def empty(limiter: SharedRateLimiter) -> None:
    """Take the whole request bucket, then what refilled meanwhile, until a caller has to wait:
    the bucket is then in debt, however long the draining took.
    """
    per_minute = limiter.requests_per_minute
    assert per_minute is not None
    await drain(limiter, per_minute)
    batch = max(1, per_minute // 120)  # half a second of refill per round trip
    while True:
        granted = await asyncio.gather(*(limiter.acquire() for _ in range(batch)))
        if any(reservation.waited for reservation in granted):
            break
    assert limiter.connection.available  # emptied in Redis, not in the local fallback


@dataclass(frozen=True)
class Reading:
    """The request bucket as Redis last wrote it."""

    level: float  # requests it held then (negative: the debt of callers waiting their turn)
    at: float  # when, on Redis' clock


async def read(limiter: SharedRateLimiter) -> Reading:
    level, at = await limiter.connection.run(lambda client: client.hmget(KEY, "r", "at"))
    return Reading(float(level), float(at))


def taken(limiter: SharedRateLimiter, since: Reading, now: Reading) -> float:
    """Requests taken from the bucket between two readings, net of turns given back: the level
    rises by the refill in between and falls by one per request (below capacity).
    """
    assert limiter.requests_per_minute is not None
    refill = (now.at - since.at) * limiter.requests_per_minute / 60
    return since.level + refill - now.level


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition`` until it holds; fails after ``SETTLE`` seconds."""
    async with asyncio.timeout(SETTLE):
        while not await condition():  # noqa: ASYNC110 - the state polled is in Redis
            await asyncio.sleep(0.01)


async def test_replicas_share_one_request_bucket(redis):
    per_minute = 1200
    rate = per_minute / 60  # requests per second
    first, second = (
        replica(redis.url, requests_per_minute=per_minute),
        replica(redis.url, requests_per_minute=per_minute),
    )
    await empty(first)  # the minute's requests are used up, by either replica
    emptied = await read(first)
    assert emptied.level < 0
    started = time.monotonic()
    granted = await asyncio.gather(*((first, second)[i % 2].acquire() for i in range(20)))
    elapsed = time.monotonic() - started
    last = await read(first)
    assert taken(first, emptied, last) == pytest.approx(20, abs=1e-3)  # all 20 in the one bucket
    # The bucket's rule: from the reading, the k-th request's turn is (k - level) / rate seconds
    # later, whichever replica asks. Each caller is told its wait when Redis takes its request,
    # somewhere between the reading and the last take (`asked`, on Redis' clock however slow
    # the client), so the k-th shortest wait is within `asked` of that turn. With a bucket per
    # replica, or none, ten or more of these waits would be 0 where the rule wants 0.55 s and
    # more (it would take the 20 requests half a second to reach Redis to hide that).
    asked = last.at - emptied.at
    for k, wait in enumerate(sorted(reservation.waited for reservation in granted), 1):
        turn = (k - emptied.level) / rate
        assert turn - asked - ROUNDING <= wait <= turn + ROUNDING, (k, wait, turn, asked)
    # And they really waited: a sleep can end late on a busy machine, never early.
    assert elapsed >= max(reservation.waited for reservation in granted) - 0.01


async def test_tokens_are_shared_and_settled(redis):
    first, second = (
        replica(redis.url, tokens_per_minute=6000),
        replica(redis.url, tokens_per_minute=6000),
    )
    reservation = await first.acquire(6000)
    reservation.settle(100)  # gives 5900 back, shared

    async def refunded() -> bool:  # the correction is written in the background
        tokens = await first.connection.run(lambda client: client.hget(KEY, "t"))
        return float(tokens) >= 5900

    await until(refunded)
    # Redis computes the wait: none with the refund; without it 49 s (and `until` fails first).
    assert (await second.acquire(5000)).waited == 0
    with pytest.raises(InvalidRequestError, match="can never fit"):
        await second.acquire(6001)


async def test_a_full_queue_fails_at_once_with_retry_after(redis):
    # 10 requests a minute: a turn every 6 s, so the five waiters below stay queued for 6 s
    # at least, however slowly this machine runs the steps in between.
    limiter = SharedRateLimiter(
        RedisConnection(redis.url + "?socket_timeout=30"),
        KEY,
        RateLimiter(requests_per_minute=10, max_waiting=5),
    )
    await drain(limiter, 10)
    emptied = await read(limiter)
    assert emptied.level < 1  # no turn left: each caller below waits for the refill
    waiting = [asyncio.create_task(limiter.acquire()) for _ in range(5)]  # turns 6 s to 30 s away

    async def queued() -> bool:
        return taken(limiter, emptied, await read(limiter)) >= 5 - ROUNDING

    await until(queued)
    with pytest.raises(RateLimitError) as full:
        await limiter.acquire()  # a sixth waiter: refused, although its wait (~36 s) is < 60 s
    assert full.value.retry_after is not None
    assert full.value.retry_after > 24.0  # after the five ahead of it, less the time since
    assert taken(limiter, emptied, await read(limiter)) == pytest.approx(5, abs=1e-3)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_cancelled_waiters_give_their_turns_back(redis):
    limiter = replica(redis.url, requests_per_minute=20)  # a turn every 3 s
    await drain(limiter, 20)
    emptied = await read(limiter)
    assert emptied.level < 1  # no turn left: each caller below waits for the refill
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]  # 3 s to 15 s each

    async def held(requests: int) -> bool:
        return abs(taken(limiter, emptied, await read(limiter)) - requests) < 1e-3

    await until(lambda: held(5))  # all five queued in Redis
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    # The bucket holds none of them any more, as if they had never asked; without the refunds
    # it would hold five until the refill pays them back, and `until` fails.
    await until(lambda: held(0))
    reservation = await limiter.acquire()
    assert await held(1)
    # First in line again: its turn is the first refill after the draining (3 s at most),
    # where without the refunds it would come after the five cancelled ones (18 s).
    assert reservation.waited <= (1 - emptied.level) * 3 + ROUNDING


async def test_local_limits_while_redis_is_away_then_shared_again():
    import redis.asyncio  # noqa: F401 - imported before the clock starts, as a running service has

    server = RedisServer()
    limiter = replica(server.url, requests_per_minute=600)
    started = time.monotonic()
    for _ in range(5):
        reservation = await limiter.acquire()  # the local bucket, full at first
        assert reservation.waited == 0
    # One refused connection (a closed port answers at once), then the rest without touching the
    # network: a few milliseconds. Waiting out the 1 s socket timeout per call would take 5 s.
    assert time.monotonic() - started < 3.0
    assert not limiter.connection.available
    assert limiter.local.requests_per_minute == 600
    with server:
        await asyncio.sleep(limiter.connection.retry_in() + 0.05)
        await limiter.acquire()
        level = await limiter.connection.run(lambda client: client.hget(KEY, "r"))
    assert float(level) == pytest.approx(599, abs=1)  # the shared bucket took this one
