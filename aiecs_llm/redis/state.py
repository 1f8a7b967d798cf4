"""Resilience state shared by every replica through Redis (``LLM_STATE_URL=redis://...``).

``RedisState`` is an ``InProcessState`` whose rate limits are ``SharedRateLimiter`` buckets in
Redis, and whose circuit breakers and key pools tell the other replicas what they learn:

- a route that opens is written as ``aiecs_llm:breaker:<route label>`` for the cooldown, and a
  route closed by a successful probe deletes it;
- a key that hits a rate limit is written as ``aiecs_llm:key:<provider>:<fingerprint>:cooling``
  for its cool-down (never shortened), a rejected key as ``...:retired`` for a day.

Each replica's decisions stay local and synchronous (no Redis round trip on the request path);
a background task of each event loop reads the shared entries of the routes and keys it knows
every ``sync_interval`` seconds while clients use the state, so that a replica learns of another
one's open route or cooling key within about a second. Keys appear by fingerprint only. While
Redis is unreachable the replicas work on local state alone and catch up when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import structlog
from typing_extensions import override

from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.config.settings import ProviderSettings, Resilience
from aiecs_llm.redis.connection import (
    LuaScript,
    RedisConnection,
    RedisUnavailable,
    connection_for,
    spawn,
)
from aiecs_llm.redis.limits import SharedRateLimiter
from aiecs_llm.resilience.breaker import CircuitBreaker, Route, _Circuit
from aiecs_llm.resilience.keys import KeyPool
from aiecs_llm.resilience.limits import ConcurrencyLimit, RateBudget
from aiecs_llm.resilience.state import InProcessState, ProviderLimits, local_rate_limiter

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_SYNC_INTERVAL", "RedisState", "rate_key", "shared_state"]

DEFAULT_SYNC_INTERVAL = 1.0
"""Seconds between two reads of the other replicas' breaker and key state."""
_IDLE_ROUNDS = 30  # sync rounds without a client using the state before the task stops
_RETIRED_TTL = 86_400
_log = structlog.get_logger("aiecs_llm.redis")

# KEYS: the entry. ARGV: milliseconds. Sets it for that long unless it already lasts longer.
_AT_LEAST = LuaScript("""
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
""")


class SharedCircuitBreaker(CircuitBreaker):
    """A ``CircuitBreaker`` that publishes the routes it opens and closes, and adopts the routes
    other replicas opened.
    """

    def __init__(
        self, connection: RedisConnection, *, failure_threshold: int, cooldown: float
    ) -> None:
        super().__init__(failure_threshold=failure_threshold, cooldown=cooldown)
        self.connection = connection

    def entry(self, route: Route) -> str:
        """The Redis key that says ``route`` is open."""
        return self.connection.key("breaker", route.label)

    @override
    def record_success(self, route: Route) -> None:
        was_open = self.state(route) != "closed"
        super().record_success(route)
        if was_open:
            spawn(self._publish(self.entry(route), 0))

    @override
    def _open(self, route: Route, circuit: _Circuit, now: float) -> None:
        super()._open(route, circuit, now)
        spawn(self._publish(self.entry(route), int(self.cooldown * 1000)))

    def adopt(self, route: Route, remaining: float) -> None:
        """Another replica opened ``route`` for ``remaining`` more seconds."""
        circuit = self._circuit(route)
        until = self._clock.monotonic() + remaining
        if circuit.open_until is not None and circuit.open_until >= until - 0.05:
            return
        if circuit.open_until is None:
            circuit.opened_count += 1
            _log.warning("llm.breaker.opened", route=route.label, shared=True)
        circuit.open_until = until
        circuit.probe_since = None

    def routes(self) -> list[Route]:
        """Every route seen so far."""
        return list(self._circuits)

    async def _publish(self, entry: str, milliseconds: int) -> None:
        try:
            if milliseconds:
                await self.connection.run(lambda c: c.set(entry, "1", px=milliseconds))
            else:
                await self.connection.run(lambda c: c.delete(entry))
        except RedisUnavailable:
            return  # the other replicas find out for themselves


class SharedKeyPool(KeyPool):
    """A ``KeyPool`` that publishes its keys' cool-downs and retirements and adopts the other
    replicas' ones.
    """

    def __init__(
        self,
        connection: RedisConnection,
        provider: str,
        keys: Sequence[str],
        *,
        default_cooldown: float,
        max_cooldown: float,
    ) -> None:
        super().__init__(
            provider, keys, default_cooldown=default_cooldown, max_cooldown=max_cooldown
        )
        self.connection = connection

    def entries(self) -> list[tuple[str, str, str]]:
        """(fingerprint, cooling entry, retired entry) for every key of the pool."""
        result = []
        for entry in self._keys:
            base = self.connection.key("key", self.provider, entry.fingerprint)
            result.append((entry.fingerprint, f"{base}:cooling", f"{base}:retired"))
        return result

    @override
    def rate_limited(self, key: str, retry_after: float | None) -> None:
        super().rate_limited(key, retry_after)
        entry = self._entry(key)
        remaining = max(entry.cooling_until - self._clock.monotonic(), 0.0)
        cooling = self.connection.key("key", self.provider, entry.fingerprint, "cooling")
        spawn(self._publish(_AT_LEAST, cooling, int(remaining * 1000) + 1))

    @override
    def rejected(self, key: str) -> None:
        super().rejected(key)
        retired = self.connection.key("key", self.provider, self._entry(key).fingerprint)
        spawn(self._publish(None, f"{retired}:retired", _RETIRED_TTL))

    def adopt(self, key_fingerprint: str, cooling_for: float, retired: bool) -> None:
        """What another replica learned about the key ``key_fingerprint``."""
        for entry in self._keys:
            if entry.fingerprint != key_fingerprint:
                continue
            # A cool-down left in Redis by an older replica (or a broken server) is capped too.
            rest = min(cooling_for, self._max_cooldown)
            entry.cooling_until = max(entry.cooling_until, self._clock.monotonic() + rest)
            if retired and not entry.retired:
                entry.retired = True
                _log.error("llm.key.rejected", provider=self.provider, key=entry.fingerprint)

    async def _publish(self, script: LuaScript | None, entry: str, amount: int) -> None:
        try:
            if script is not None:
                await self.connection.script(script, [entry], [amount])
            else:
                await self.connection.run(lambda c: c.set(entry, "1", ex=amount))
        except RedisUnavailable:
            return


class RedisState(InProcessState):
    """Breakers, key pools and rate limits shared by every replica through Redis.

    Args:
        connection: The Redis server.
        sync_interval: Seconds between two reads of the other replicas' breaker and key state.

    """

    def __init__(
        self, connection: RedisConnection, *, sync_interval: float = DEFAULT_SYNC_INTERVAL
    ) -> None:
        super().__init__()
        self.connection = connection
        self.sync_interval = sync_interval
        self._syncers: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            WeakKeyDictionary()
        )
        self._used = 0.0

    @override
    def __repr__(self) -> str:
        return f"RedisState({self.connection.label!r})"

    @override
    def provider_limits(
        self,
        provider: str,
        configured: ProviderSettings,
        resilience: Resilience,
        client_concurrency: ConcurrencyLimit | None,
    ) -> ProviderLimits:
        self._used = time.monotonic()
        loop = asyncio.get_running_loop()
        syncer = self._syncers.get(loop)
        if syncer is None or syncer.done():
            task = spawn(self._sync_while_used())
            if task is not None:
                self._syncers[loop] = task
        return super().provider_limits(provider, configured, resilience, client_concurrency)

    async def sync(self) -> None:
        """Adopt what the other replicas published about the routes and keys known here."""
        routes = [
            (breaker, route) for breaker in self._shared_breakers() for route in breaker.routes()
        ]
        keys = [(pool, *names) for pool in self._shared_pools() for names in pool.entries()]
        if not routes and not keys:
            return

        async def read(client: Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for breaker, route in routes:
                pipe.pttl(breaker.entry(route))
            for _, _, cooling, retired in keys:
                pipe.pttl(cooling)
                pipe.exists(retired)
            return list(await pipe.execute())

        answers = await self.connection.run(read)
        for (breaker, route), remaining in zip(routes, answers, strict=False):
            if remaining > 0:
                breaker.adopt(route, remaining / 1000)
        flags = answers[len(routes) :]
        for index, (pool, key_fingerprint, _, _) in enumerate(keys):
            cooling, retired = flags[2 * index], flags[2 * index + 1]
            if cooling > 0 or retired:
                pool.adopt(key_fingerprint, max(cooling, 0) / 1000, bool(retired))

    async def aclose(self) -> None:
        """Stop the running loop's sync task."""
        syncer = self._syncers.pop(asyncio.get_running_loop(), None)
        if syncer is not None:
            syncer.cancel()

    async def _sync_while_used(self) -> None:
        while time.monotonic() - self._used < self.sync_interval * _IDLE_ROUNDS:
            # While Redis is away local state carries on; the next round tries again.
            with contextlib.suppress(RedisUnavailable):
                await self.sync()
            await asyncio.sleep(self.sync_interval)

    def _shared_breakers(self) -> list[SharedCircuitBreaker]:
        return [b for b in self._breakers.values() if isinstance(b, SharedCircuitBreaker)]

    def _shared_pools(self) -> list[SharedKeyPool]:
        return [p for p in self._pools.values() if isinstance(p, SharedKeyPool)]

    @override
    def _new_breaker(self, resilience: Resilience) -> CircuitBreaker:
        return SharedCircuitBreaker(
            self.connection,
            failure_threshold=resilience.breaker_failures,
            cooldown=resilience.breaker_cooldown,
        )

    @override
    def _new_key_pool(self, provider: str, keys: Sequence[str], resilience: Resilience) -> KeyPool:
        return SharedKeyPool(
            self.connection,
            provider,
            keys,
            default_cooldown=resilience.key_cooldown,
            max_cooldown=resilience.max_key_cooldown,
        )

    @override
    def _new_rate(
        self, provider: str, configured: ProviderSettings, resilience: Resilience
    ) -> RateBudget:
        return SharedRateLimiter(
            self.connection,
            rate_key(self.connection, provider, configured),
            local_rate_limiter(provider, configured, resilience),
        )


def rate_key(connection: RedisConnection, provider: str, configured: ProviderSettings) -> str:
    """The Redis key of the rate buckets of ``provider`` with ``configured``'s keys.

    The limits belong to the account: replicas with the same keys share one bucket, named by a
    fingerprint of the keys' fingerprints.
    """
    keys = sorted(fingerprint(key.get_secret_value()) for key in configured.all_keys())
    account = fingerprint(",".join(keys)) if keys else "default"
    return connection.key("rate", provider, account)


_STATES: dict[str, RedisState] = {}


def shared_state(url: str) -> RedisState:
    """The process's ``RedisState`` for ``url``."""
    if url not in _STATES:
        _STATES[url] = RedisState(connection_for(url))
    return _STATES[url]
