"""Alerts: tell the application when a budget fills up or calls start failing.

``AlertManager`` turns observations into ``Alert`` values and hands each one to the
application's callbacks, once: a budget threshold fires once per budget period, an error-rate
alert fires once and re-arms only after the rate has fallen back below its threshold. Callbacks
may be plain functions (run inline) or coroutine functions (scheduled on the running event
loop); one that fails is logged and never breaks the call that triggered it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.errors import ConfigurationError

__all__ = ["Alert", "AlertCallback", "AlertKind", "AlertManager"]

AlertKind = Literal["budget", "error_rate"]

ALERT = "llm.alert"
CALLBACK_FAILED = "llm.alert.callback_failed"

_log = structlog.get_logger("aiecs_llm.accounting.alerts")

# A settle from the previous period can arrive after the new one began (a call that started
# before midnight); remembering one period back keeps it from re-firing that period's alerts.
_PERIODS_KEPT = 2


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the application should hear about.

    Attributes:
        kind: ``budget`` or ``error_rate``.
        name: The budget's name (``daily``, ``daily:service=billing``) or ``error_rate``.
        threshold: The threshold crossed: a fraction of the budget or an error rate (0-1).
        value: What was observed: the fraction of the budget used, or the error rate.
        message: One human-readable sentence.
        at: When the alert fired (UTC).
        period: For budget alerts, the budget period (e.g. ``2026-11-25``); else None.

    """

    kind: AlertKind
    name: str
    threshold: float
    value: float
    message: str
    at: datetime
    period: str | None = None


AlertCallback = Callable[[Alert], Awaitable[None] | None]
"""Receives each alert; a plain function or a coroutine function."""


class AlertManager:
    """Decides when to alert and delivers alerts to callbacks. Thread-safe.

    Args:
        callbacks: Called with each alert, in order.
        budget_thresholds: Fractions of a budget at which to alert, each once per period.
        error_rate_threshold: Error rate (0-1) at which ``check_error_rate`` alerts; None to
            never alert on errors.
        error_rate_window: Seconds of recent calls the error rate is measured over.
        min_requests: Calls the window must hold before the error rate is trusted, either to
            fire or to re-arm.

    Raises:
        ConfigurationError: A threshold is not positive, the error-rate threshold is above 1,
            the window is not positive or ``min_requests`` is below 1.

    """

    def __init__(
        self,
        callbacks: Sequence[AlertCallback] = (),
        *,
        budget_thresholds: Sequence[float] = (0.5, 0.8, 1.0),
        error_rate_threshold: float | None = None,
        error_rate_window: float = 300.0,
        min_requests: int = 20,
    ) -> None:
        if any(not threshold > 0 for threshold in budget_thresholds):
            raise ConfigurationError("budget_thresholds must all be positive fractions")
        if error_rate_threshold is not None and not 0 < error_rate_threshold <= 1:
            raise ConfigurationError("error_rate_threshold must be a fraction in (0, 1]")
        if not error_rate_window > 0:
            raise ConfigurationError("error_rate_window must be a positive number of seconds")
        if min_requests < 1:
            raise ConfigurationError("min_requests must be at least 1")
        self._callbacks = list(callbacks)
        self._thresholds = sorted(set(budget_thresholds))
        self._error_threshold = error_rate_threshold
        self._error_window = error_rate_window
        self._min_requests = min_requests
        self._lock = threading.Lock()
        self._fired: dict[str, OrderedDict[str, set[float]]] = {}
        self._error_armed = True
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_callback(self, callback: AlertCallback) -> None:
        """Also deliver alerts to ``callback``."""
        with self._lock:
            self._callbacks.append(callback)

    def budget_used(self, name: str, period_key: str, fraction: float) -> None:
        """Alert for each threshold that ``fraction`` has reached, once per budget period.

        Several thresholds crossed at once (0.3 -> 0.9) fire in ascending order. A period key
        not seen before re-arms every threshold.

        Args:
            name: The budget, e.g. ``daily`` or ``daily:service=billing``.
            period_key: The budget's current period, e.g. ``2026-11-25``.
            fraction: Spent over limit (1.0 is the whole budget).

        """
        with self._lock:
            periods = self._fired.setdefault(name, OrderedDict())
            if period_key not in periods:
                periods[period_key] = set()
                while len(periods) > _PERIODS_KEPT:
                    periods.popitem(last=False)
            fired = periods[period_key]
            crossed = [t for t in self._thresholds if t <= fraction and t not in fired]
            fired.update(crossed)
        for threshold in crossed:
            self._fire(
                Alert(
                    kind="budget",
                    name=name,
                    threshold=threshold,
                    value=fraction,
                    message=(
                        f"Budget {name!r} is {fraction:.0%} used in period {period_key} "
                        f"(threshold {threshold:.0%})"
                    ),
                    at=datetime.now(UTC),
                    period=period_key,
                )
            )

    def check_error_rate(self, monitor: LLMMonitor) -> None:
        """Alert when the monitor's recent error rate has reached the threshold.

        Fires once; re-arms when the rate is measured below the threshold again. With fewer
        than ``min_requests`` calls in the window nothing changes either way.

        Args:
            monitor: Where the calls are counted.

        """
        if self._error_threshold is None:
            return
        ended, failed = monitor.calls_in_window(self._error_window)
        if ended < self._min_requests:
            return
        rate = failed / ended
        with self._lock:
            if rate < self._error_threshold:
                self._error_armed = True
                return
            if not self._error_armed:
                return
            self._error_armed = False
        self._fire(
            Alert(
                kind="error_rate",
                name="error_rate",
                threshold=self._error_threshold,
                value=rate,
                message=(
                    f"{rate:.0%} of the last {ended} calls failed within "
                    f"{self._error_window:g}s (threshold {self._error_threshold:.0%})"
                ),
                at=datetime.now(UTC),
            )
        )

    async def drain(self) -> None:
        """Wait for the async callbacks still running on this event loop."""
        loop = asyncio.get_running_loop()
        while pending := [task for task in self._pending() if task.get_loop() is loop]:
            # Failures were already logged by _finished; gather must not raise them again.
            await asyncio.gather(*pending, return_exceptions=True)

    def _pending(self) -> list[asyncio.Task[Any]]:
        with self._lock:
            return list(self._tasks)

    def _fire(self, alert: Alert) -> None:
        _log.warning(
            ALERT,
            kind=alert.kind,
            name=alert.name,
            threshold=alert.threshold,
            value=alert.value,
            period=alert.period,
            detail=alert.message,
        )
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            self._deliver(callback, alert)

    def _deliver(self, callback: AlertCallback, alert: Alert) -> None:
        try:
            result = callback(alert)
        # The caller is settling a budget or finishing a request: whatever the application's
        # callback raises, that must go on. The failure is logged with its type.
        except Exception as exc:  # noqa: BLE001
            _callback_failed(callback, alert, exc)
            return
        if not inspect.isawaitable(result):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if inspect.iscoroutine(result):
                result.close()  # never awaited on purpose: no "never awaited" warning
            _log.error(
                CALLBACK_FAILED,
                callback=_name_of(callback),
                kind=alert.kind,
                name=alert.name,
                error="RuntimeError",
                detail="an async alert callback needs a running event loop",
            )
            return
        task = loop.create_task(_awaited(result), name=f"aiecs_llm alert {alert.name}")
        with self._lock:
            self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, callback, alert))

    def _finished(self, task: asyncio.Task[Any], callback: AlertCallback, alert: Alert) -> None:
        with self._lock:
            self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _callback_failed(callback, alert, exc)


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


def _callback_failed(callback: AlertCallback, alert: Alert, exc: BaseException) -> None:
    _log.error(
        CALLBACK_FAILED,
        callback=_name_of(callback),
        kind=alert.kind,
        name=alert.name,
        error=type(exc).__name__,
        exc_info=exc,
    )


def _name_of(callback: AlertCallback) -> str:
    return getattr(callback, "__qualname__", None) or type(callback).__name__
