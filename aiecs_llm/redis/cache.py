"""``RedisCache``: the response cache shared by every replica, in Redis.

Each answer is one string, ``aiecs_llm:cache:<cache key>``, expiring with the cache's ttl.
Redis bounds the memory itself (``maxmemory`` with an ``allkeys-lru`` or ``volatile-lru``
policy), so there is no ``max_entries`` here. An unreachable Redis makes every lookup a miss
and every store a no-op: the cache saves money, it never fails a call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import override

from aiecs_llm.accounting.cache_store import (
    CacheBackend,
    CachedResponse,
    decode_entry,
    encode_entry,
)
from aiecs_llm.redis.connection import RedisConnection, RedisUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCache"]

_CLEAR_BATCH = 500


class RedisCache(CacheBackend):
    """Cached answers in Redis, shared by every replica.

    Args:
        connection: The Redis server.

    """

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection

    @override
    def __repr__(self) -> str:
        return f"RedisCache({self.connection.label!r})"

    @override
    async def get(self, key: str) -> CachedResponse | None:
        entry = self.connection.key("cache", key)
        try:
            text = await self.connection.run(lambda client: client.get(entry))
        except RedisUnavailable:
            return None
        if text is None:
            return None
        value = decode_entry(str(text))
        if value is None:
            await self.connection.run(lambda client: client.delete(entry))
        return value

    @override
    async def set(self, key: str, value: CachedResponse, ttl: float | None) -> None:
        entry, text = self.connection.key("cache", key), encode_entry(value)
        milliseconds = None if ttl is None else max(int(ttl * 1000), 1)
        try:
            await self.connection.run(lambda client: client.set(entry, text, px=milliseconds))
        except RedisUnavailable:
            return

    @override
    async def clear(self) -> None:
        """Remove every cached answer (of this prefix) from Redis."""
        pattern = self.connection.key("cache", "*")

        async def unlink_all(client: Redis) -> None:
            batch = []
            async for name in client.scan_iter(match=pattern, count=_CLEAR_BATCH):
                batch.append(name)
                if len(batch) >= _CLEAR_BATCH:
                    await client.unlink(*batch)
                    batch.clear()
            if batch:
                await client.unlink(*batch)

        await self.connection.run(unlink_all)
