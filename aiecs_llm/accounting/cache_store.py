"""Where cached answers live: the stored entry and its backends, ``MemoryCache`` in process and
``SQLiteCache`` on disk (``aiecs_llm.redis.cache.RedisCache`` shares them between replicas).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from typing_extensions import override

from aiecs_llm.errors import ConfigurationError
from aiecs_llm.types import LLMResponse

_log = structlog.get_logger("aiecs_llm.accounting.cache")


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
