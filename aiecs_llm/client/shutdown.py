"""Closing a client with calls in flight: they end at once, as a closed-client error.

A call waits in a few places: for a concurrency slot or the rate limiter, between retries, for
the provider's answer, for the next chunk of a stream. Each of those waits runs inside a scope
of the client's ``InFlight``; ``close()`` expires every open scope, which cancels the wait the
way ``asyncio.timeout`` does, and the scope turns that into ``ConfigurationError`` (code
``client_closed``, no status; a stream that already yielded text wraps it in
``StreamInterruptedError``). So a call ended by ``close()`` is neither retried nor counted
against the route by the shared circuit breaker, and nothing waits for an idle timeout: the
HTTP client closing under a stream does not always wake its reader.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from aiecs_llm.errors import ConfigurationError

CLOSED_CODE = "client_closed"
"""``code`` of the errors of a closed client."""
# How long close() waits for its calls to unwind before it closes their HTTP clients anyway.
_UNWIND_SECONDS = 1.0


class InFlight:
    """The waits of one client's calls, so that ``close()`` can end them."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.closed = False
        self._scopes: dict[asyncio.Timeout, asyncio.AbstractEventLoop] = {}
        self._drained: asyncio.Event | None = None

    def refused(self) -> ConfigurationError:
        """The error of a call made after ``close()``: nothing was started."""
        return ConfigurationError(f"{self.owner} is closed", code=CLOSED_CODE)

    def ended(self) -> ConfigurationError:
        """The error of a call that ``close()`` ended."""
        return ConfigurationError(
            f"{self.owner} was closed while the call was in flight", code=CLOSED_CODE
        )

    def scope(self, seconds: float | None = None) -> _Scope:
        """A wait that ``close()`` ends; ``seconds`` also bounds it (``TimeoutError``)."""
        return _Scope(self, seconds)

    async def close(self) -> None:
        """End every wait in flight, and give the calls a moment to unwind."""
        self.closed = True
        if not self._scopes:
            return
        self._drained = asyncio.Event()
        for scope, loop in list(self._scopes.items()):
            loop.call_soon_threadsafe(self._expire, scope)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_UNWIND_SECONDS):
                await self._drained.wait()

    def _left(self, scope: asyncio.Timeout) -> None:
        self._scopes.pop(scope, None)
        if self._drained is not None and not self._scopes:
            self._drained.set()

    def _expire(self, scope: asyncio.Timeout) -> None:
        if scope in self._scopes and not scope.expired():
            scope.reschedule(0)  # in the past: cancels the waiting task at once


class _Scope:
    __slots__ = ("_flight", "_timeout")

    def __init__(self, flight: InFlight, seconds: float | None) -> None:
        self._flight = flight
        self._timeout = asyncio.timeout(seconds)

    async def __aenter__(self) -> None:
        if self._flight.closed:
            raise self._flight.ended()
        await self._timeout.__aenter__()
        self._flight._scopes[self._timeout] = asyncio.get_running_loop()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._flight._left(self._timeout)
        try:
            await self._timeout.__aexit__(exc_type, exc, traceback)
        except TimeoutError:
            if self._flight.closed:
                raise self._flight.ended() from None
            raise
