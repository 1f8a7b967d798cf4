"""Hedged requests: when the first route is slow, ask a second one and take whichever answers.

The delay before the second request is a high percentile of the model's recent latencies, so
only the slowest few percent of calls are doubled. The losing request is cancelled (its
connection closed, its limiter slot released) and logged, so it is accounted too.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

T = TypeVar("T")

HEDGE_WINDOW = 200
"""Recent latencies kept per model."""
HEDGE_MIN_SAMPLES = 20
"""Below this many samples the configured default delay is used instead of the percentile."""

_log = structlog.get_logger("aiecs_llm.resilience.hedging")


class LatencyTracker:
    """Recent successful latencies per model, and the hedge delay derived from them."""

    def __init__(self, *, percentile: float, default_delay: float) -> None:
        self.percentile = percentile
        self.default_delay = default_delay
        self._samples: defaultdict[str, deque[float]] = defaultdict(
            lambda: deque(maxlen=HEDGE_WINDOW)
        )

    def record(self, model: str, seconds: float) -> None:
        """Remember one successful call's latency."""
        self._samples[model].append(seconds)

    def delay(self, model: str) -> float:
        """Seconds to wait for the first request before sending the second."""
        samples = self._samples.get(model)
        if samples is None or len(samples) < HEDGE_MIN_SAMPLES:
            return self.default_delay
        ordered = sorted(samples)
        index = min(len(ordered) - 1, math.ceil(self.percentile * len(ordered)) - 1)
        return ordered[index]


async def hedged(
    first: Callable[[], Awaitable[T]],
    second: Callable[[], Awaitable[T]],
    *,
    delay: float,
    release: Callable[[T], Awaitable[None]],
    label: str,
) -> T:
    """Run ``first``; if it has not finished after ``delay`` seconds, also run ``second``.

    The first success wins and the other request is cancelled; a success that lost the race
    is handed to ``release``. If both fail, the first request's error is raised.
    """
    primary = asyncio.ensure_future(first())
    tasks = [primary]
    try:
        done, _ = await asyncio.wait(tasks, timeout=delay)
        if done:
            return primary.result()
        tasks.append(asyncio.ensure_future(second()))
        _log.info("llm.request.hedged", model=label, after_seconds=round(delay, 3))
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winner = next((task for task in done if task.exception() is None), None)
            if winner is not None:
                for task in done - {winner}:
                    if task.exception() is None:
                        await release(task.result())
                _log.info(
                    "llm.request.hedge_won",
                    model=label,
                    winner="second" if winner is not primary else "first",
                )
                return winner.result()
        return primary.result()  # both failed: the first request's error
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
                _log.info("llm.request.cancelled", model=label, reason="lost the hedge race")
        await asyncio.gather(*tasks, return_exceptions=True)
