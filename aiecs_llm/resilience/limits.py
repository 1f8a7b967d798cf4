"""Local limits that keep a process inside what a provider allows, by waiting rather than failing.

``ConcurrencyLimit`` caps calls in flight. ``RateLimiter`` paces requests and tokens per minute
with two token buckets (capacity = the per-minute figure, refilled continuously, starting full)
and a bounded FIFO queue: a caller that does not fit waits its turn, is never overtaken by a
later one, and leaves no trace if it is cancelled while waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from typing_extensions import override

from aiecs_llm.errors import InvalidRequestError, RateLimitError
from aiecs_llm.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["DEFAULT_MAX_WAITING", "ConcurrencyLimit", "RateBudget", "RateLimiter", "Reservation"]

DEFAULT_MAX_WAITING = 1000
"""Callers a RateLimiter lets wait before it fails new ones at once."""

# Float arithmetic may leave a bucket a hair short after sleeping exactly the computed wait.
_EPSILON = 1e-9

_log = structlog.get_logger("aiecs_llm.resilience.limits")


class ConcurrencyLimit:
    """At most ``capacity`` holders at once; the others wait in FIFO order.

    Raises:
        ValueError: ``capacity`` below 1.

    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or capacity < 1:
            raise ValueError("capacity must be a whole number >= 1")
        self.capacity = capacity
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        """Slots held right now."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return sum(1 for granted in self._waiters if not granted.done())

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of ``async with limit.slot():``."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self._in_use < self.capacity and not self._waiters:
            self._in_use += 1
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release()  # the slot was handed over just as we were cancelled: pass it on
            elif granted in self._waiters:  # a release may already have skipped and dropped it
                self._waiters.remove(granted)
            raise

    def _release(self) -> None:
        while self._waiters:
            granted = self._waiters.popleft()
            # A waiter cancelled in this same tick is still queued until its task runs.
            if not granted.done():
                # Straight to the next waiter, so that a newcomer cannot take the slot first.
                granted.set_result(None)
                return
        self._in_use -= 1


@dataclass(slots=True)
class _Bucket:
    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        elapsed = max(now - self.updated, 0.0)
        self.level = min(self.capacity, self.level + elapsed * self.capacity / 60.0)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        missing = amount - self.level
        return 0.0 if missing <= _EPSILON else missing * 60.0 / self.capacity


class Reservation:
    """A request's place in a RateLimiter's budget, returned by ``acquire``.

    Attributes:
        tokens: The tokens reserved at ``acquire`` (the caller's estimate).
        waited: Seconds the caller waited for its turn.

    """

    def __init__(self, tokens: int, waited: float, adjust: Callable[[int], None]) -> None:
        self.tokens = tokens
        self.waited = waited
        self._charged = tokens
        self._adjust = adjust

    def settle(self, actual_tokens: int) -> None:
        """Correct the token budget to what the call really used: refund or charge the difference.

        Settling again with the same figure changes nothing; a new figure corrects the last one.
        """
        if actual_tokens < 0:
            raise ValueError("actual_tokens must be >= 0")
        difference, self._charged = actual_tokens - self._charged, actual_tokens
        if difference:
            self._adjust(difference)


class RateBudget(Protocol):
    """A per-minute budget of requests and tokens that callers wait for: ``RateLimiter`` in
    this process, ``aiecs_llm.redis.limits.SharedRateLimiter`` across replicas.
    """

    async def acquire(self, tokens: int = 0) -> Reservation:
        """Wait until one request and ``tokens`` tokens fit, then take them."""
        ...


def check_token_request(tokens: int, tokens_per_minute: int | None, limiter: str) -> None:
    """Refuse, before any wait, a request no wait can serve; ``limiter`` names the budget.

    Raises:
        ValueError: ``tokens`` is negative.
        InvalidRequestError: ``tokens`` exceeds ``tokens_per_minute``, so it can never fit.

    """
    if tokens < 0:
        raise ValueError("tokens must be >= 0")
    if tokens_per_minute is not None and tokens > tokens_per_minute:
        raise InvalidRequestError(
            f"{limiter} allows {tokens_per_minute} tokens per minute; "
            f"a request of {tokens} tokens can never fit"
        )


@dataclass(slots=True, eq=False)
class _Waiter:
    tokens: int
    turn: asyncio.Future[None]  # resolved when this waiter reaches the head of the queue


class RateLimiter(RateBudget):
    """Requests and tokens per minute for one provider (or key): callers wait their turn in a
    bounded FIFO queue instead of failing.

    Args:
        requests_per_minute: Request budget per minute; None for no request limit.
        tokens_per_minute: Token budget per minute; None for no token limit.
        max_waiting: Callers allowed to wait at once; beyond it ``acquire`` fails at once.
        clock: Time source.
        name: Names the limiter in logs and errors (e.g. the provider).

    Raises:
        ValueError: A per-minute figure below 1 or a negative ``max_waiting``.

    """

    def __init__(
        self,
        *,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        max_waiting: int = DEFAULT_MAX_WAITING,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "",
    ) -> None:
        for figure in (requests_per_minute, tokens_per_minute):
            if figure is not None and (isinstance(figure, bool) or figure < 1):
                raise ValueError("per-minute limits must be whole numbers >= 1 (or None)")
        if max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        now = clock.monotonic()
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.max_waiting = max_waiting
        self.name = name
        self._label = f"rate limiter {name!r}" if name else "rate limiter"
        self._clock = clock
        self._requests = _bucket(requests_per_minute, now)
        self._tokens = _bucket(tokens_per_minute, now)
        self._queue: deque[_Waiter] = deque()
        self._queued_tokens = 0
        self._kick: asyncio.Future[None] | None = None  # wakes the sleeping head after a refund

    @property
    def waiting(self) -> int:
        """Callers waiting for their turn."""
        return len(self._queue)

    @override
    async def acquire(self, tokens: int = 0) -> Reservation:
        """Wait until one request and ``tokens`` tokens fit both budgets, then take them.

        Raises:
            ValueError: ``tokens`` is negative.
            InvalidRequestError: ``tokens`` exceeds ``tokens_per_minute``, so it can never fit.
            RateLimitError: ``max_waiting`` callers already wait; ``retry_after`` estimates
                when this one would have had its turn.

        """
        check_token_request(tokens, self.tokens_per_minute, self._label)
        if not self._queue and self._wait_for(1, tokens) == 0.0:
            return self._take(tokens, waited=0.0)
        if len(self._queue) >= self.max_waiting:
            estimate = self._estimated_wait(tokens)
            _log.warning("llm.ratelimit.queue_full", limiter=self.name, waiting=len(self._queue))
            raise RateLimitError(
                f"{self._label}: the local queue is full ({len(self._queue)} callers waiting); "
                f"try again in about {estimate:.1f}s",
                retry_after=estimate,
            )
        return await self._wait_turn(tokens)

    async def _wait_turn(self, tokens: int) -> Reservation:
        started = self._clock.monotonic()
        waiter = _Waiter(tokens, asyncio.get_running_loop().create_future())
        _log.debug(
            "llm.ratelimit.waiting",
            limiter=self.name,
            tokens=tokens,
            position=len(self._queue) + 1,
            wait_seconds=round(self._estimated_wait(tokens), 3),
        )
        if not self._queue:
            waiter.turn.set_result(None)
        self._queue.append(waiter)
        self._queued_tokens += tokens
        try:
            await waiter.turn
            while (delay := self._wait_for(1, tokens)) > 0.0:
                await self._nap(delay)
            return self._take(tokens, waited=self._clock.monotonic() - started)
        finally:
            # Runs after _take on success; on cancellation nothing was taken. Either way the
            # next waiter must not be left waiting for a turn this one will never pass on.
            self._queue.remove(waiter)
            self._queued_tokens -= tokens
            if self._queue and not self._queue[0].turn.done():
                self._queue[0].turn.set_result(None)

    async def _nap(self, delay: float) -> None:
        kick = asyncio.get_running_loop().create_future()
        self._kick = kick
        sleep = asyncio.ensure_future(self._clock.sleep(delay))
        try:
            await asyncio.wait((sleep, kick), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            self._kick = None

    def _estimated_wait(self, tokens: int) -> float:
        # Until everyone queued, and then this caller, has been served at the refill rate.
        return self._wait_for(len(self._queue) + 1, self._queued_tokens + tokens)

    def _wait_for(self, requests: int, tokens: int) -> float:
        now = self._clock.monotonic()
        waits = [0.0]
        for bucket, amount in ((self._requests, requests), (self._tokens, tokens)):
            if bucket is not None:
                bucket.refill(now)
                waits.append(bucket.wait_for(amount))
        return max(waits)

    def _take(self, tokens: int, *, waited: float) -> Reservation:
        for bucket, amount in ((self._requests, 1), (self._tokens, tokens)):
            if bucket is not None:
                bucket.level -= amount
        return Reservation(tokens, waited, self._adjust_tokens)

    def _adjust_tokens(self, difference: int) -> None:
        if self._tokens is None:
            return
        self._tokens.refill(self._clock.monotonic())
        # A charge may leave the bucket in debt: later callers wait until it is paid off.
        self._tokens.level = min(self._tokens.capacity, self._tokens.level - difference)
        if difference < 0 and self._kick is not None and not self._kick.done():
            self._kick.set_result(None)


def _bucket(per_minute: int | None, now: float) -> _Bucket | None:
    return None if per_minute is None else _Bucket(float(per_minute), float(per_minute), now)
