"""A virtual clock for tests: cooldowns of minutes pass instantly, in the right order.

``sleep`` parks the caller until virtual time reaches its wake time. Time jumps forward on its
own, to the earliest pending wake time, only once every other task on the loop is blocked, so
several tasks sleeping concurrently wake in order of their wake times, and a task that sleeps
less is never overtaken by one that sleeps more. ``advance`` moves time by hand, for code that
only reads the clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

# Where the loop exposes no ready queue, time jumps after this many idle passes instead.
_FALLBACK_IDLE_PASSES = 50


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver_scheduled = False
        self._idle_passes = 0

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        wake = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), wake))
        self._schedule_driver(loop)
        await wake

    def advance(self, seconds: float) -> None:
        """Move time forward and wake, in order, every sleeper whose time has come."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        self._wake_due()

    def _schedule_driver(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._driver_scheduled:
            self._driver_scheduled = True
            self._idle_passes = 0
            loop.call_soon(self._drive, loop)

    def _drive(self, loop: asyncio.AbstractEventLoop) -> None:
        self._driver_scheduled = False
        self._drop_cancelled()
        if not self._sleepers:
            return
        if not self._loop_is_idle(loop):
            self._driver_scheduled = True
            loop.call_soon(self._drive, loop)
            return
        self._now = max(self._now, self._sleepers[0][0])
        self._wake_due()
        if self._sleepers:
            self._schedule_driver(loop)

    def _loop_is_idle(self, loop: asyncio.AbstractEventLoop) -> bool:
        ready = getattr(loop, "_ready", None)
        if ready is not None:
            return len(ready) == 0
        self._idle_passes += 1
        return self._idle_passes >= _FALLBACK_IDLE_PASSES

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, wake = heapq.heappop(self._sleepers)
            if not wake.done():
                wake.set_result(None)

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
