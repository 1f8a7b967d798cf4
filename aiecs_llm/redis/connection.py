"""One Redis server, as the replicas of a service share it: connections, scripts and outages.

``RedisConnection`` hands out one redis-py asyncio client per event loop and runs every command
through ``run``. When Redis cannot be reached or answers too slowly, the connection is marked
down for a short, growing pause (0.5 s doubling to 5 s): during it, ``run`` raises
``RedisUnavailable`` at once without touching the network, so that callers fall back (local
rate limits) or refuse (budgets) instead of each waiting out a timeout; after it, the next
command tries again, and its success is the recovery. The outage and the recovery are each
logged once, with the URL's password replaced by ``***``.

redis-py is imported on first use only, so that ``import aiecs_llm`` stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit
from weakref import WeakKeyDictionary

import structlog
from typing_extensions import override

from aiecs_llm.errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "LuaScript",
    "RedisConnection",
    "RedisUnavailable",
    "connection_for",
    "redact_url",
    "spawn",
]

T = TypeVar("T")

DEFAULT_SOCKET_TIMEOUT = 1.0
"""Seconds a command may take before Redis counts as down (``?socket_timeout=`` overrides).
Redis answers in about a millisecond; a second also absorbs a busy event loop's stalls."""
_MAX_CONNECTIONS = 32  # per event loop
_POOL_WAIT = 5.0  # seconds a command may wait for a free connection
_FIRST_PAUSE = 0.5
_MAX_PAUSE = 5.0

_log = structlog.get_logger("aiecs_llm.redis")
_background: set[asyncio.Task[Any]] = set()


class RedisUnavailable(Exception):
    """Redis is down or too slow; raised instead of waiting while the connection rests.

    ``attempted`` says whether the command was sent: if so, Redis may have run it (the reply
    was lost), and a caller that booked something must undo it.
    """

    def __init__(self, message: str, *, attempted: bool) -> None:
        super().__init__(message)
        self.attempted = attempted


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A Lua script run atomically on the server, sent in full only when the server lacks it."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def redact_url(url: str) -> str:
    """``url`` with its password (and a user name used as one) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and not parts.username:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


class RedisConnection:
    """The Redis server at ``url`` (``redis://``, ``rediss://`` or ``unix://``).

    Args:
        url: The server; it may carry a password, which never leaves this object.
        prefix: Prepended to every key, so that several deployments can share one server.

    Raises:
        ConfigurationError: The URL's scheme is not a Redis one.

    """

    def __init__(self, url: str, *, prefix: str = "aiecs_llm") -> None:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                f"LLM_STATE_URL must be a redis://, rediss:// or unix:// URL, not {redact_url(url)}"
            )
        self._url = url
        self.prefix = prefix
        self.label = redact_url(url)
        self._clients: WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = WeakKeyDictionary()
        self._down_until = 0.0
        self._pause = 0.0
        self._probing = False

    @override
    def __repr__(self) -> str:
        return f"RedisConnection({self.label!r}, available={self.available})"

    @property
    def available(self) -> bool:
        """False while the connection rests after a failure."""
        return self._pause == 0.0

    def retry_in(self) -> float:
        """Seconds until the next command may try the server again (0 if it may now)."""
        return max(self._down_until - time.monotonic(), 0.0)

    def key(self, *parts: str) -> str:
        """``prefix:part:part...``."""
        return ":".join((self.prefix, *parts))

    async def run(self, command: Callable[[Redis], Awaitable[T]]) -> T:
        """``await command(client)``, or ``RedisUnavailable`` when Redis is down or too slow."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        probe = False
        if self._pause:
            if time.monotonic() < self._down_until or self._probing:
                raise RedisUnavailable(f"Redis at {self.label} is unavailable", attempted=False)
            self._probing = probe = True
        client = self._client()
        try:
            result = await command(client)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._failed(exc, probe=probe)
            self._discard(client)
            raise RedisUnavailable(f"Redis at {self.label} is unavailable", attempted=True) from exc
        finally:
            if probe:
                self._probing = False
        if self._pause:
            _log.info("llm.state.recovered", url=self.label)
            self._pause = 0.0
        return result

    async def script(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` with ``keys`` and ``args``, through ``run``."""

        async def call(client: Redis) -> Any:
            from redis.exceptions import NoScriptError

            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                # First use on this server, or the server restarted and lost its scripts.
                return await client.eval(script.source, len(keys), *keys, *args)

        return await self.run(call)

    def _failed(self, exc: BaseException, *, probe: bool) -> None:
        if self._pause == 0.0:
            self._pause = _FIRST_PAUSE
            _log.warning("llm.state.unavailable", url=self.label, error=type(exc).__name__)
        elif probe:
            self._pause = min(self._pause * 2, _MAX_PAUSE)
        else:
            return  # sent before the outage was known: the same failure, not a longer outage
        self._down_until = time.monotonic() + self._pause

    def _discard(self, client: Redis) -> None:
        # Every pooled connection may be dead (a restarted server forgets them all): the next
        # try starts from a fresh pool instead of finding the stale ones one failure at a time.
        # Only the pool the failed command used: a newer one may already be working.
        loop = asyncio.get_running_loop()
        if self._clients.get(loop) is client:
            del self._clients[loop]
            spawn(_close_quietly(client))

    def _client(self) -> Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            from redis.asyncio import BlockingConnectionPool, Redis

            # Callers beyond max_connections wait for a connection (a burst of requests is not
            # an outage); options in the URL's query string win over these defaults.
            pool = BlockingConnectionPool.from_url(
                self._url,
                max_connections=_MAX_CONNECTIONS,
                timeout=_POOL_WAIT,
                socket_timeout=DEFAULT_SOCKET_TIMEOUT,
                socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
                decode_responses=True,
            )
            client = Redis.from_pool(pool)
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running loop's connections (others close with their loop)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


async def _close_quietly(client: Redis) -> None:
    from redis.exceptions import RedisError

    # The server is gone or going: whatever closing a dead connection raises says nothing new.
    with contextlib.suppress(RedisError, OSError):
        await client.aclose()


_CONNECTIONS: dict[str, RedisConnection] = {}


def connection_for(url: str) -> RedisConnection:
    """The process's connection to ``url``: state, budgets and cache share it."""
    if url not in _CONNECTIONS:
        _CONNECTIONS[url] = RedisConnection(url)
    return _CONNECTIONS[url]


def spawn(work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
    """Run ``work`` in the background of the running loop (None, and ``work`` dropped, outside
    one); the task is kept referenced until it ends.
    """
    try:
        task = asyncio.get_running_loop().create_task(work)
    except RuntimeError:
        work.close()
        return None
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task
