"""``LLMMonitor``: in-process counters, costs and latency percentiles over every call.

The spec's monitor (section 8.1), made complete: it counts what ``RequestRecord`` says about each
call (outcome, error class, tokens, cost by model and provider, retries, fallbacks, cache hits)
and keeps the most recent latencies in a bounded ring buffer for percentiles. Recording is
thread-safe, amortised O(1) and does no I/O, so it can sit on every call's path.

Rates in ``get_metrics()`` are percentages, as in the spec. Cancelled calls count in
``total_requests`` but are neither successes nor failures, so ``success_rate`` and
``error_rate`` add up to less than 100 when some calls were cancelled. A monitor that has seen
no call reports ``success_rate`` 100.0 and ``error_rate`` 0.0: nothing has failed yet.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiecs_llm.accounting.records import Outcome, RequestRecord

__all__ = ["DEFAULT_LATENCY_WINDOW", "DEFAULT_MONITOR", "LLMMonitor"]

DEFAULT_LATENCY_WINDOW = 10_000
"""Recent calls kept for latency percentiles and windowed error rates."""

_UNKNOWN_ERROR = "unknown"


class LLMMonitor:
    """Counts calls, tokens and cost, and keeps recent latencies for percentiles.

    Args:
        latency_window: How many recent calls the percentiles and ``error_rate()`` look at.
            Memory stays bounded by it however many calls are recorded.
        clock: Monotonic seconds; when a call ended, for ``error_rate()``. Tests pass a fake.

    Raises:
        ValueError: ``latency_window`` is below 1.

    """

    def __init__(
        self,
        *,
        latency_window: int = DEFAULT_LATENCY_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if latency_window < 1:
            raise ValueError("latency_window must be at least 1")
        self._window = latency_window
        self._clock = clock
        self._lock = threading.Lock()
        self._state: Callable[[], Mapping[str, Any]] | None = None
        self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        self._outcomes: Counter[Outcome] = Counter()
        self._tokens: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._requests_by_model: Counter[str] = Counter()
        self._cost = 0.0
        self._cost_by_route: defaultdict[str, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float)
        )
        self._latency_sum = 0.0
        self._latency_count = 0
        self._latencies: deque[float] = deque(maxlen=self._window)
        self._ttfc_sum = 0.0
        self._ttfc_count = 0
        self._ttfcs: deque[float] = deque(maxlen=self._window)
        self._counts: Counter[str] = Counter()  # cache hits/misses, retries, fallbacks, unpriced
        # When each recent call ended, with a running count of failures, so that a window's
        # failures are one bisect and one subtraction. The lists are trimmed from the front in
        # bulk (amortised O(1)); ``_head`` is the first live entry.
        self._ended_at: list[float] = []
        self._failed_so_far: list[int] = []
        self._head = 0
        self._failed_before_head = 0

    def record(self, record: RequestRecord) -> None:
        """Count one finished call.

        Args:
            record: What the call did and cost.

        """
        tokens = {
            "prompt": record.prompt_tokens or 0,
            "completion": record.completion_tokens or 0,
            "cached": record.cached_tokens or 0,
            "reasoning": record.reasoning_tokens or 0,
            "total": record.total_tokens,
        }
        # A call that used something we cannot price makes total_cost an underestimate; a
        # failure that used nothing does not.
        unpriced = record.cost is None and (record.outcome == "success" or record.total_tokens > 0)
        with self._lock:
            self._count_outcome(record.outcome, record.error_class, record.latency, tokens)
            self._requests_by_model[record.model] += 1
            if record.cost is not None:
                self._cost += record.cost
                self._cost_by_route[record.provider][record.model] += record.cost
            if record.stream and record.time_to_first_chunk is not None:
                self._ttfc_sum += record.time_to_first_chunk
                self._ttfc_count += 1
                self._ttfcs.append(record.time_to_first_chunk)
            self._counts["cache_hits" if record.cache_hit else "cache_misses"] += 1
            self._counts["retries"] += record.retries
            self._counts["fallbacks"] += record.fallback_from is not None
            self._counts["unpriced_requests"] += unpriced

    def record_request(self, success: bool, tokens: int, cost: float, response_time: float) -> None:
        """Count one call the spec's way (section 8.1), for callers that have no record.

        The tokens go to ``total_tokens`` only (they are not split into prompt and completion)
        and the cost to ``total_cost`` only (there is no model to file it under).

        Args:
            success: Whether the call succeeded.
            tokens: Tokens the call used.
            cost: USD the call cost.
            response_time: Seconds the call took.

        """
        with self._lock:
            outcome: Outcome = "success" if success else "error"
            self._count_outcome(outcome, None, response_time, {"total": tokens})
            self._cost += cost

    def _count_outcome(
        self,
        outcome: Outcome,
        error_class: str | None,
        latency: float | None,
        tokens: Mapping[str, int],
    ) -> None:
        self._outcomes[outcome] += 1
        if outcome == "error":
            self._errors[error_class or _UNKNOWN_ERROR] += 1
        self._tokens.update(tokens)
        if latency is not None:
            self._latency_sum += latency
            self._latency_count += 1
            self._latencies.append(latency)
        self._note_ended(failed=outcome == "error")

    def _note_ended(self, *, failed: bool) -> None:
        # A clock that steps back (a test's, or a bad one) must not unsort the list.
        now = self._clock()
        if self._ended_at and now < self._ended_at[-1]:
            now = self._ended_at[-1]
        previous = self._failed_so_far[-1] if self._failed_so_far else self._failed_before_head
        self._ended_at.append(now)
        self._failed_so_far.append(previous + failed)
        if len(self._ended_at) - self._head > self._window:
            self._failed_before_head = self._failed_so_far[self._head]
            self._head += 1
            if self._head >= self._window:
                del self._ended_at[: self._head]
                del self._failed_so_far[: self._head]
                self._head = 0

    def calls_in_window(self, window_seconds: float) -> tuple[int, int]:
        """How many calls ended in the last ``window_seconds``, and how many of those failed.

        Only the most recent ``latency_window`` calls are remembered, so under heavy traffic the
        counts cover the newest calls of the window rather than all of them.

        Args:
            window_seconds: How far back to look.

        Returns:
            ``(ended, failed)``; cancelled calls count as ended, not as failed.

        Raises:
            ValueError: ``window_seconds`` is not positive.

        """
        if not window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        with self._lock:
            cutoff = self._clock() - window_seconds
            first = bisect.bisect_right(self._ended_at, cutoff, lo=self._head)
            ended = len(self._ended_at) - first
            if ended == 0:
                return 0, 0
            before = (
                self._failed_so_far[first - 1] if first > self._head else self._failed_before_head
            )
            return ended, self._failed_so_far[-1] - before

    def error_rate(self, window_seconds: float) -> float | None:
        """The fraction (0-1) of calls ended in the last ``window_seconds`` that failed.

        Args:
            window_seconds: How far back to look.

        Returns:
            Failed calls over all calls that ended in the window (cancelled ones included in
            the denominator), or None when no call ended in it.

        """
        ended, failed = self.calls_in_window(window_seconds)
        return failed / ended if ended else None

    def reset(self) -> None:
        """Forget every call counted so far (an attached state stays attached)."""
        with self._lock:
            self._reset_unlocked()

    def attach_state(self, snapshot: Callable[[], Mapping[str, Any]]) -> None:
        """Report circuit and key states too, e.g. ``monitor.attach_state(state.snapshot)``.

        Args:
            snapshot: Returns ``{"circuits": {label: health}, "keys": {provider: [key]}}`` as
                ``InProcessState.snapshot()`` does; it is called on each ``get_metrics()``.

        """
        self._state = snapshot

    def get_metrics(self) -> dict[str, Any]:
        """Everything counted so far, as plain JSON-ready values.

        Returns:
            The spec's keys (``total_requests``, ``successful_requests``, ``failed_requests``,
            ``total_tokens``, ``total_cost``, ``avg_response_time``, ``success_rate``,
            ``error_rate``; rates in percent) and more: ``cancelled_requests``, token counts
            by kind, ``errors_by_class``, ``cost_by_model``, ``cost_by_provider``,
            ``cost_by_provider_model``, ``requests_by_model``, ``latency_p50/p95/p99`` and
            ``time_to_first_chunk_avg/p50/p95`` in seconds (over the recent window; None when
            nothing was measured), latency and first-chunk ``_count``/``_sum``, ``cache_hits``,
            ``cache_misses`` (any recorded call not answered from the cache, whatever its
            outcome), ``cache_hit_rate`` (percent), ``retries``, ``fallbacks``,
            ``unpriced_requests``; and ``circuits`` and ``keys`` when a state is attached.

        """
        # The state has locks of its own; reading it outside ours keeps lock order trivial.
        state = self._state() if self._state is not None else None
        with self._lock:
            metrics = self._metrics_unlocked()
            latencies = sorted(self._latencies)
            ttfcs = sorted(self._ttfcs)
        # Sorting and interpolating happen outside the lock so that recording never waits on it.
        metrics.update(
            latency_p50=_percentile(latencies, 0.50),
            latency_p95=_percentile(latencies, 0.95),
            latency_p99=_percentile(latencies, 0.99),
            time_to_first_chunk_p50=_percentile(ttfcs, 0.50),
            time_to_first_chunk_p95=_percentile(ttfcs, 0.95),
        )
        if state is not None:
            metrics["circuits"] = _plain(state.get("circuits", {}))
            metrics["keys"] = _plain(state.get("keys", {}))
        return metrics

    def _metrics_unlocked(self) -> dict[str, Any]:
        successful = self._outcomes["success"]
        failed = self._outcomes["error"]
        total = self._outcomes.total()
        hits, misses = self._counts["cache_hits"], self._counts["cache_misses"]
        cost_by_provider_model = {
            provider: dict(models) for provider, models in self._cost_by_route.items()
        }
        cost_by_model: Counter[str] = Counter()
        for models in self._cost_by_route.values():
            cost_by_model.update(models)
        return {
            "total_requests": total,
            "successful_requests": successful,
            "failed_requests": failed,
            "cancelled_requests": self._outcomes["cancelled"],
            "success_rate": successful / total * 100 if total else 100.0,
            "error_rate": failed / total * 100 if total else 0.0,
            "total_tokens": self._tokens["total"],
            "prompt_tokens": self._tokens["prompt"],
            "completion_tokens": self._tokens["completion"],
            "cached_tokens": self._tokens["cached"],
            "reasoning_tokens": self._tokens["reasoning"],
            "total_cost": self._cost,
            "unpriced_requests": self._counts["unpriced_requests"],
            "cost_by_model": dict(cost_by_model),
            "cost_by_provider": {p: sum(m.values()) for p, m in cost_by_provider_model.items()},
            "cost_by_provider_model": cost_by_provider_model,
            "requests_by_model": dict(self._requests_by_model),
            "errors_by_class": dict(self._errors),
            "avg_response_time": (
                self._latency_sum / self._latency_count if self._latency_count else 0.0
            ),
            "latency_count": self._latency_count,
            "latency_sum": self._latency_sum,
            "time_to_first_chunk_avg": (
                self._ttfc_sum / self._ttfc_count if self._ttfc_count else None
            ),
            "time_to_first_chunk_count": self._ttfc_count,
            "time_to_first_chunk_sum": self._ttfc_sum,
            "cache_hits": hits,
            "cache_misses": misses,
            "cache_hit_rate": hits / (hits + misses) * 100 if hits + misses else 0.0,
            "retries": self._counts["retries"],
            "fallbacks": self._counts["fallbacks"],
        }


def _percentile(ordered: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default method)."""
    if not ordered:
        return None
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _plain(value: object) -> Any:
    """Dataclasses, mappings and sequences as dicts and lists, for JSON and exporters."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value


DEFAULT_MONITOR = LLMMonitor()
"""The monitor a client records into when it is given none."""
