"""Resilience state that belongs to the account, not to one client object.

A provider's rate limits, its keys' cool-downs and its routes' circuit breakers are shared by
every client of the process, so that ten clients do not each believe they have the whole quota.
``InProcessState`` keeps them in memory; ``aiecs_llm.redis.state.RedisState`` shares them with
every replica through Redis, behind the same methods. ``aiecs_llm.client.shared.state_for``
picks one from the settings (``LLM_STATE_URL``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.config.settings import ProviderSettings, Resilience
from aiecs_llm.resilience.breaker import CircuitBreaker
from aiecs_llm.resilience.keys import KeyPool
from aiecs_llm.resilience.limits import ConcurrencyLimit, RateBudget, RateLimiter, Reservation

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """What one attempt must hold: the client's and the provider's concurrency slots and the
    provider's rate budget.
    """

    client_concurrency: ConcurrencyLimit | None = None
    provider_concurrency: ConcurrencyLimit | None = None
    rate: RateBudget | None = None

    @asynccontextmanager
    async def hold(self, tokens: int) -> AsyncIterator[Reservation | None]:
        """Wait for the rate budget, then for the slots; release the slots on exit."""
        reservation = await self.rate.acquire(tokens) if self.rate else None
        async with AsyncExitStack() as slots:
            for limit in (self.client_concurrency, self.provider_concurrency):
                if limit is not None:
                    await slots.enter_async_context(limit.slot())
            yield reservation


class InProcessState:
    """Breakers, key pools and limits shared by the clients of this process."""

    def __init__(self) -> None:
        self._breakers: dict[tuple[int, float], CircuitBreaker] = {}
        self._pools: dict[tuple[str, tuple[str, ...]], KeyPool] = {}
        # asyncio primitives belong to one event loop, so limits are kept per loop.
        self._concurrency: WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, int], ConcurrencyLimit]
        ] = WeakKeyDictionary()
        self._rates: WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, int | None, int | None, int], RateBudget]
        ] = WeakKeyDictionary()

    def breaker(self, resilience: Resilience) -> CircuitBreaker:
        """The breaker for these thresholds (one per configuration, shared)."""
        slot = (resilience.breaker_failures, resilience.breaker_cooldown)
        if slot not in self._breakers:
            self._breakers[slot] = self._new_breaker(resilience)
        return self._breakers[slot]

    def key_pool(self, provider: str, keys: Sequence[str], resilience: Resilience) -> KeyPool:
        """The pool for this set of keys, so every client using them sees the same cool-downs."""
        slot = (provider, tuple(fingerprint(key) for key in keys))
        if slot not in self._pools:
            self._pools[slot] = self._new_key_pool(provider, keys, resilience)
        return self._pools[slot]

    def provider_limits(
        self,
        provider: str,
        configured: ProviderSettings,
        resilience: Resilience,
        client_concurrency: ConcurrencyLimit | None,
    ) -> ProviderLimits:
        """The limits an attempt on ``provider`` must hold, in the running event loop."""
        loop = asyncio.get_running_loop()
        concurrency = None
        if configured.max_concurrency:
            limits = self._concurrency.setdefault(loop, {})
            slot = (provider, configured.max_concurrency)
            concurrency = limits.setdefault(slot, ConcurrencyLimit(configured.max_concurrency))
        rate = None
        rpm, tpm = configured.requests_per_minute, configured.tokens_per_minute
        if rpm or tpm:
            rates = self._rates.setdefault(loop, {})
            key = (provider, rpm, tpm, resilience.rate_limit_queue)
            if key not in rates:
                rates[key] = self._new_rate(provider, configured, resilience)
            rate = rates[key]
        return ProviderLimits(client_concurrency, concurrency, rate)

    # The three factories are the seam a shared backend overrides.

    def _new_breaker(self, resilience: Resilience) -> CircuitBreaker:
        return CircuitBreaker(
            failure_threshold=resilience.breaker_failures, cooldown=resilience.breaker_cooldown
        )

    def _new_key_pool(self, provider: str, keys: Sequence[str], resilience: Resilience) -> KeyPool:
        return KeyPool(
            provider,
            keys,
            default_cooldown=resilience.key_cooldown,
            max_cooldown=resilience.max_key_cooldown,
        )

    def _new_rate(
        self, provider: str, configured: ProviderSettings, resilience: Resilience
    ) -> RateBudget:
        return local_rate_limiter(provider, configured, resilience)

    def snapshot(self) -> dict[str, Any]:
        """Breaker and key states for metrics: labels and fingerprints only, never keys."""
        return {
            "circuits": {
                label: health
                for breaker in self._breakers.values()
                for label, health in breaker.snapshot().items()
            },
            "keys": {provider: pool.snapshot() for (provider, _), pool in self._pools.items()},
        }


def local_rate_limiter(
    provider: str, configured: ProviderSettings, resilience: Resilience
) -> RateLimiter:
    """The in-process limiter for ``provider``'s configured requests and tokens per minute."""
    return RateLimiter(
        requests_per_minute=configured.requests_per_minute,
        tokens_per_minute=configured.tokens_per_minute,
        max_waiting=resilience.rate_limit_queue,
        name=provider,
    )


DEFAULT_STATE = InProcessState()
"""The state every client uses unless given another or ``LLM_STATE_URL`` is set."""
