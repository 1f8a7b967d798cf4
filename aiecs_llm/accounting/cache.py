"""The response cache: the same request is never paid for twice.

``cache_key`` hashes everything that changes an answer; a ``CacheBackend`` stores answers
(``MemoryCache`` in process, ``SQLiteCache`` on disk, ``RedisCache`` shared by replicas);
``ResponseCache`` decides what may be cached (by default only ``temperature=0`` calls) and
coalesces concurrent identical requests into one call. A cached answer is the original
``LLMResponse`` with ``cached=True``, ``cost_estimate=0.0`` and the original cost kept in
``original_cost``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from aiecs_llm.accounting.cache_store import CacheBackend, CachedResponse, MemoryCache
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.types import LLMResponse

CacheMode = Literal["auto", "force", "bypass"]

IGNORED_PARAMS = frozenset(
    {"api_key", "timeout", "max_retries", "num_retries", "stream", "stream_options", "client",
     "hedge", "tags", "metadata", "cache"}
)  # fmt: skip
"""Parameters that never change the answer (how and by whom it is sent), left out of the key."""

_KEY_VERSION = 1  # bump when the canonical form changes, so old entries stop matching
_log = structlog.get_logger("aiecs_llm.accounting.cache")


def cache_key(
    *,
    provider: str,
    model: str,
    messages: Sequence[Mapping[str, str]],
    params: Mapping[str, Any],
) -> str:
    """The sha256 hex digest of a canonical JSON form of the request.

    Every parameter given counts (``temperature``, ``max_tokens``, ``top_p``, ``stop``,
    ``seed``, ``response_format``, ``tools``, ...) except those in ``IGNORED_PARAMS``; a
    parameter set to None counts as not given. Mapping order does not matter, message order
    does. Raises ``ConfigurationError`` for a value that has no stable JSON form.
    """
    canonical = {
        "v": _KEY_VERSION,
        "provider": provider,
        "model": model,
        "messages": [_canonical(dict(message), "messages") for message in messages],
        "params": {
            name: _canonical(value, name)
            for name, value in params.items()
            if value is not None and name not in IGNORED_PARAMS
        },
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any, name: str) -> Any:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # temperature=0 and temperature=0.0 ask for the same answer
    if isinstance(value, type) and issubclass(value, BaseModel):
        # A structured-output class: its JSON schema is what the provider sees.
        value = {"pydantic_schema": value.model_json_schema()}
    elif isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(key): _canonical(item, name) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item, name) for item in value]
    if value is not None and not isinstance(value, str | int | float):
        raise ConfigurationError(
            f"parameter {name!r} ({type(value).__name__}) has no stable form for a cache key; "
            "pass it as JSON-like data or call without the cache"
        )
    return value


def mark_cached(response: LLMResponse) -> LLMResponse:
    """``response`` as served from the cache: nothing was paid (``cost_estimate=0.0``), with
    ``cached=True`` and the cost of the call that produced it in ``original_cost``.
    """
    fields = LLMResponse.model_fields
    update: dict[str, Any] = {"cost_estimate": 0.0}
    # Fields checked, not assumed, so that this module works with any LLMResponse version.
    if "cached" in fields:
        update["cached"] = True
    if "original_cost" in fields:
        already = getattr(response, "cached", False)
        update["original_cost"] = (
            getattr(response, "original_cost", None) if already else response.cost_estimate
        )
    return response.model_copy(update=update)


@dataclass(slots=True)
class _Flight:
    """One call shared by every identical request made while it runs."""

    task: asyncio.Task[tuple[LLMResponse, bool]]
    waiters: int = 0


class ResponseCache:
    """Policy and coalescing in front of a backend.

    Args:
        backend: where answers are stored (default: a ``MemoryCache``).
        ttl: seconds an answer stays valid (None: until evicted).
        deterministic_only: in ``auto`` mode, cache only calls made with ``temperature=0``:
            a call at a higher temperature asks for a fresh sample every time.

    """

    def __init__(
        self,
        backend: CacheBackend | None = None,
        *,
        ttl: float | None = 3600.0,
        deterministic_only: bool = True,
    ) -> None:
        if ttl is not None and not ttl > 0:
            raise ConfigurationError("the cache ttl must be a number of seconds > 0, or None")
        self.backend: CacheBackend = backend if backend is not None else MemoryCache()
        self.ttl = ttl
        self.deterministic_only = deterministic_only
        self._hits = 0
        self._misses = 0
        self._flights: dict[str, _Flight] = {}

    @property
    def hits(self) -> int:
        """Answers given without a call of their own: stored, or shared with a concurrent call."""
        return self._hits

    @property
    def misses(self) -> int:
        """Lookups that found nothing."""
        return self._misses

    def should_cache(self, temperature: float | None, mode: CacheMode = "auto") -> bool:
        """Whether a call may be served from and stored in the cache.

        ``auto``: calls at ``temperature=0`` (any call when ``deterministic_only`` is off);
        None means the client's default temperature, which is not 0. ``force``: any call.
        ``bypass``: none, neither read nor written.
        """
        if mode == "bypass":
            return False
        if mode == "force":
            return True
        if mode != "auto":
            raise ConfigurationError(f"cache mode must be auto, force or bypass, not {mode!r}")
        return not self.deterministic_only or temperature == 0

    async def get(self, key: str) -> CachedResponse | None:
        """The stored entry (the original response, unmarked), counted as a hit or a miss."""
        entry = await self.backend.get(key)
        if entry is None:
            self._misses += 1
        else:
            self._hits += 1
        return entry

    async def put(
        self, key: str, response: LLMResponse, chunks: Sequence[str] | None = None
    ) -> None:
        """Store ``response`` (and a stream's chunks) for ``ttl`` seconds."""
        value = CachedResponse(response, None if chunks is None else tuple(chunks))
        await self.backend.set(key, value, self.ttl)

    async def clear(self) -> None:
        """Forget every stored answer."""
        await self.backend.clear()

    async def get_or_call(
        self,
        key: str,
        call: Callable[[], Awaitable[LLMResponse]],
        *,
        mode: CacheMode = "auto",
        temperature: float | None = None,
    ) -> tuple[LLMResponse, bool]:
        """The cached answer, or ``call()``'s, stored; returns ``(response, hit)``.

        A hit is marked by ``mark_cached``. Identical requests made while the call runs wait
        for it and share its answer (as hits); if it fails they all get its error and nothing
        is stored. The call is cancelled only when every request waiting for it is.
        """
        if not self.should_cache(temperature, mode):
            return await call(), False
        flight = self._flights.get(key)
        leader = flight is None
        if flight is None:
            flight = _Flight(asyncio.create_task(self._fetch(key, call)))
            # Its error is read by the waiters; when none is left, it is read here, unlogged.
            flight.task.add_done_callback(_retrieve)
            self._flights[key] = flight
        flight.waiters += 1
        try:
            response, stored = await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Nobody wants the answer any more: stop paying for it.
                flight.task.cancel()
                self._forget(key, flight)
        if leader and not stored:
            return response, False
        if not leader:
            self._hits += 1
        return mark_cached(response), True

    async def _fetch(
        self, key: str, call: Callable[[], Awaitable[LLMResponse]]
    ) -> tuple[LLMResponse, bool]:
        try:
            entry = await self.get(key)
            if entry is not None:
                return entry.response, True
            response = await call()
            await self.put(key, response)
            return response, False
        finally:
            flight = self._flights.get(key)
            if flight is not None and flight.task is asyncio.current_task():
                self._forget(key, flight)

    def _forget(self, key: str, flight: _Flight) -> None:
        # Only this flight: a later one for the same key may have started since.
        if self._flights.get(key) is flight:
            del self._flights[key]


def _retrieve(task: asyncio.Task[tuple[LLMResponse, bool]]) -> None:
    if not task.cancelled():
        task.exception()
