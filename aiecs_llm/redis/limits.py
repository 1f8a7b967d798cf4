"""A provider's requests and tokens per minute, shared by every replica through Redis.

The same two token buckets as ``RateLimiter`` (capacity = the per-minute figure, refilled
continuously, starting full), kept in one Redis hash per provider account,
``aiecs_llm:rate:<provider>:<account>``, and updated by one Lua script on Redis' clock. A caller
takes its request and tokens at once and the buckets may go into debt: the debt is the queue.
The script answers how long the caller must wait for its turn (the time the refill takes to pay
the debt back), so callers are served in the order they asked, across replicas, with one round
trip each and no polling. A caller cancelled while waiting gives its share back.

While Redis is unreachable each replica falls back to a local ``RateLimiter`` with the same
figures, and returns to the shared one by itself when Redis answers again.
"""

from __future__ import annotations

import asyncio

import structlog
from typing_extensions import override

from aiecs_llm.errors import RateLimitError
from aiecs_llm.redis.connection import LuaScript, RedisConnection, RedisUnavailable, spawn
from aiecs_llm.resilience.limits import RateBudget, RateLimiter, Reservation, check_token_request

__all__ = ["SharedRateLimiter"]

_log = structlog.get_logger("aiecs_llm.resilience.limits")

# KEYS: the buckets. ARGV: rpm or '', tpm or '', requests, tokens (negative: given back),
# 'take' or 'adjust', max waiting. A full refill takes 60 s, after which state equals a fresh
# bucket, so the hash may expire after 120 s of silence.
_TAKE = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'r', 't', 'at')
local elapsed = math.max(now - (tonumber(state[3]) or now), 0)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local r, tk, wait = 0, 0, 0
if rpm then
  r = math.min(rpm, (tonumber(state[1]) or rpm) + elapsed * rpm / 60)
  r = math.min(rpm, r - tonumber(ARGV[3]))
  if r < 0 then wait = -r * 60 / rpm end
end
if tpm then
  tk = math.min(tpm, (tonumber(state[2]) or tpm) + elapsed * tpm / 60)
  tk = math.min(tpm, tk - tonumber(ARGV[4]))
  if tk < 0 then wait = math.max(wait, -tk * 60 / tpm) end
end
if ARGV[5] == 'take' and (r < -tonumber(ARGV[6]) or wait > 60) then
  return {'full', string.format('%.6f', wait)}
end
redis.call('HSET', KEYS[1], 'r', string.format('%.6f', r), 't', string.format('%.6f', tk),
           'at', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], 120000)
return {'ok', string.format('%.6f', wait)}
""")


class SharedRateLimiter(RateBudget):
    """Requests and tokens per minute for one provider account, shared through Redis.

    Args:
        connection: The Redis server.
        key: The Redis key of the account's buckets.
        local: The limiter used while Redis is unreachable; its figures are this one's.

    """

    def __init__(self, connection: RedisConnection, key: str, local: RateLimiter) -> None:
        self.connection = connection
        self.key = key
        self.local = local
        self.requests_per_minute = local.requests_per_minute
        self.tokens_per_minute = local.tokens_per_minute
        self.name = local.name

    @override
    def __repr__(self) -> str:
        return (
            f"SharedRateLimiter({self.key!r}, requests_per_minute={self.requests_per_minute}, "
            f"tokens_per_minute={self.tokens_per_minute})"
        )

    @override
    async def acquire(self, tokens: int = 0) -> Reservation:
        """Wait for this caller's turn in the shared budget (the local one while Redis is
        unreachable).

        Raises:
            ValueError: ``tokens`` is negative.
            InvalidRequestError: ``tokens`` exceeds ``tokens_per_minute``.
            RateLimitError: More than ``max_waiting`` callers already wait, or the wait
                would pass a minute; ``retry_after`` says how long it would have been.

        """
        check_token_request(tokens, self.tokens_per_minute, f"rate limiter {self.name!r}")
        try:
            status, wait = await self._run(1, tokens, "take")
        except RedisUnavailable:
            return await self.local.acquire(tokens)
        if status == "full":
            _log.warning("llm.ratelimit.queue_full", limiter=self.name, shared=True)
            raise RateLimitError(
                f"rate limiter {self.name!r}: the shared queue is full; "
                f"try again in about {wait:.1f}s",
                retry_after=wait,
            )
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                spawn(self._give_back(1, tokens))
                raise
        return Reservation(tokens, wait, self._adjust)

    def _adjust(self, difference: int) -> None:
        spawn(self._give_back(0, -difference))

    async def _give_back(self, requests: int, tokens: int) -> None:
        try:
            await self._run(-requests, -tokens, "adjust")
        except RedisUnavailable:
            return  # a correction is best effort: the bucket refills within the minute anyway

    async def _run(self, requests: int, tokens: int, mode: str) -> tuple[str, float]:
        status, wait = await self.connection.script(
            _TAKE,
            [self.key],
            [
                self.requests_per_minute or "",
                self.tokens_per_minute or "",
                requests,
                tokens,
                mode,
                self.local.max_waiting,
            ],
        )
        return str(status), float(wait)
