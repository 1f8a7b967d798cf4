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
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog
from pydantic import BaseModel, ValidationError
from typing_extensions import override

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


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored answer."""

    response: LLMResponse
    """The original response, with its original cost."""
    chunks: tuple[str, ...] | None = None
    """The text chunks of a streamed answer, to replay it as a stream."""
    stored_at: float = field(default_factory=time.time)
    """When it was stored (Unix time)."""

    @property
    def replay_chunks(self) -> tuple[str, ...]:
        """The chunks to yield when serving it as a stream (the whole text when not streamed)."""
        return self.chunks if self.chunks is not None else (self.response.content,)


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


class CacheBackend(Protocol):
    """Where cached answers live (``MemoryCache``, ``SQLiteCache``,
    ``aiecs_llm.redis.cache.RedisCache``).
    """

    async def get(self, key: str) -> CachedResponse | None:
        """The entry under ``key``, or None when absent or expired."""
        ...

    async def set(self, key: str, value: CachedResponse, ttl: float | None) -> None:
        """Store ``value`` for ``ttl`` seconds (None: until evicted)."""
        ...

    async def clear(self) -> None:
        """Remove every entry."""
        ...


def encode_entry(value: CachedResponse) -> str:
    """``value`` as JSON, for a backend that stores text."""
    return json.dumps(
        {
            "response": value.response.model_dump(mode="json"),
            "chunks": None if value.chunks is None else list(value.chunks),
            "stored_at": value.stored_at,
        },
        ensure_ascii=False,
    )


def decode_entry(text: str) -> CachedResponse | None:
    """The entry ``encode_entry`` wrote; None (logged) for one this version cannot read, which
    the backend should then drop.
    """
    try:
        stored = json.loads(text)
        chunks = stored["chunks"]
        return CachedResponse(
            response=LLMResponse.model_validate(stored["response"]),
            chunks=None if chunks is None else tuple(chunks),
            stored_at=float(stored["stored_at"]),
        )
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        _log.warning("llm.cache.unreadable_entry", error=type(exc).__name__)
        return None


def _check_max_entries(max_entries: int) -> int:
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
        raise ConfigurationError("max_entries must be a whole number >= 1")
    return max_entries


class MemoryCache(CacheBackend):
    """In-process LRU with TTL: O(1) get and set, at most ``max_entries`` answers.

    Args:
        max_entries: the least recently used entry is dropped beyond this many.
        clock: seconds, for expiry (injectable for tests).

    """

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = _check_max_entries(max_entries)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float | None, CachedResponse]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @override
    async def get(self, key: str) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at is not None and self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    @override
    async def set(self, key: str, value: CachedResponse, ttl: float | None) -> None:
        expires_at = None if ttl is None else self._clock() + ttl
        self._entries[key] = (expires_at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    @override
    async def clear(self) -> None:
        self._entries.clear()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at REAL,
    used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_used ON responses (used);
CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires_at);
"""
_NEXT_USE = "(SELECT COALESCE(MAX(used), 0) + 1 FROM responses)"


class SQLiteCache(CacheBackend):
    """A persistent cache in one SQLite file; entries survive a restart.

    Queries run in a worker thread, never on the event loop. Several processes may share the
    file. Eviction drops the least recently used entries beyond ``max_entries``.

    Args:
        path: the database file (created with its folders when missing; ``~`` is expanded).
        max_entries: entries kept at most.
        clock: Unix seconds, for expiry; wall-clock time, because it must mean the same
            thing after a restart.

    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = _check_max_entries(max_entries)
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database; idempotent."""
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()
        return int(count)

    @override
    async def get(self, key: str) -> CachedResponse | None:
        try:
            return await asyncio.to_thread(self._get, key)
        except sqlite3.OperationalError as exc:
            # A locked, full or unreadable disk makes the cache miss; it never fails a call.
            _log.warning("llm.cache.unavailable", operation="get", detail=str(exc))
            return None

    @override
    async def set(self, key: str, value: CachedResponse, ttl: float | None) -> None:
        try:
            await asyncio.to_thread(self._set, key, value, ttl)
        except sqlite3.OperationalError as exc:
            _log.warning("llm.cache.unavailable", operation="set", detail=str(exc))

    @override
    async def clear(self) -> None:
        await asyncio.to_thread(self._run, "DELETE FROM responses")

    def _run(self, sql: str, *args: Any) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def _get(self, key: str) -> CachedResponse | None:
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT value, expires_at FROM responses WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            text, expires_at = row
            if expires_at is not None and now >= expires_at:
                self._db.execute("DELETE FROM responses WHERE key = ?", (key,))
                return None
            self._db.execute(f"UPDATE responses SET used = {_NEXT_USE} WHERE key = ?", (key,))
        entry = decode_entry(text)
        if entry is None:
            self._run("DELETE FROM responses WHERE key = ?", key)
        return entry

    def _set(self, key: str, value: CachedResponse, ttl: float | None) -> None:
        now = self._clock()
        text = encode_entry(value)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                f"INSERT OR REPLACE INTO responses VALUES (?, ?, ?, {_NEXT_USE})",
                (key, text, None if ttl is None else now + ttl),
            )
            self._db.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))
            self._db.execute(
                "DELETE FROM responses WHERE key IN (SELECT key FROM responses ORDER BY used "
                "LIMIT MAX((SELECT COUNT(*) FROM responses) - ?, 0))",
                (self.max_entries,),
            )


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
