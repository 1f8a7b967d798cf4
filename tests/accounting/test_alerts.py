"""AlertManager: budget thresholds once per period, error-rate alerts with re-arming, callbacks."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from datetime import UTC

import pytest
from structlog.testing import capture_logs

from aiecs_llm.accounting.alerts import Alert, AlertManager
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.errors import ConfigurationError
from tests.fake_clock import FakeClock


def collecting() -> tuple[list[Alert], AlertManager]:
    seen: list[Alert] = []
    return seen, AlertManager([seen.append])


def test_budget_thresholds_fire_once_each_in_order() -> None:
    seen, alerts = collecting()
    alerts.budget_used("daily", "2026-11-25", 0.3)
    assert seen == []
    alerts.budget_used("daily", "2026-11-25", 0.9)
    assert [(a.threshold, a.value) for a in seen] == [(0.5, 0.9), (0.8, 0.9)]
    alerts.budget_used("daily", "2026-11-25", 0.95)
    assert len(seen) == 2
    alerts.budget_used("daily", "2026-11-25", 1.2)
    alerts.budget_used("daily", "2026-11-25", 1.3)
    assert [a.threshold for a in seen] == [0.5, 0.8, 1.0]


def test_budget_alert_says_what_and_when() -> None:
    seen, alerts = collecting()
    with capture_logs() as logs:
        alerts.budget_used("daily:service=billing", "2026-11-25", 0.62)
    (alert,) = seen
    assert alert.kind == "budget"
    assert alert.name == "daily:service=billing"
    assert alert.period == "2026-11-25"
    assert alert.threshold == 0.5
    assert alert.value == 0.62
    assert alert.at.tzinfo is UTC
    assert "daily:service=billing" in alert.message
    assert "62%" in alert.message
    assert [(e["event"], e["log_level"], e["threshold"]) for e in logs] == [
        ("llm.alert", "warning", 0.5)
    ]


def test_a_new_period_rearms_and_a_late_settle_of_the_last_one_does_not() -> None:
    seen, alerts = collecting()
    alerts.budget_used("daily", "2026-11-25", 0.9)
    alerts.budget_used("daily", "2026-11-26", 0.6)
    assert [(a.period, a.threshold) for a in seen] == [
        ("2026-11-25", 0.5),
        ("2026-11-25", 0.8),
        ("2026-11-26", 0.5),
    ]
    # A call that started before midnight settles after it: no repeat of yesterday's alerts.
    alerts.budget_used("daily", "2026-11-25", 0.95)
    assert len(seen) == 3


def test_budgets_are_armed_independently() -> None:
    seen, alerts = collecting()
    alerts.budget_used("daily", "2026-11-25", 0.6)
    alerts.budget_used("monthly", "2026-11", 0.6)
    assert [a.name for a in seen] == ["daily", "monthly"]


def test_custom_thresholds_are_sorted() -> None:
    seen: list[Alert] = []
    alerts = AlertManager([seen.append], budget_thresholds=(1.0, 0.25))
    alerts.budget_used("daily", "d", 2.0)
    assert [a.threshold for a in seen] == [0.25, 1.0]


def test_each_threshold_fires_once_across_threads() -> None:
    seen, alerts = collecting()
    barrier = threading.Barrier(8)

    def settle() -> None:
        barrier.wait()
        for _ in range(200):
            alerts.budget_used("daily", "2026-11-25", 1.0)

    threads = [threading.Thread(target=settle) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.threshold for a in seen) == [0.5, 0.8, 1.0]


async def test_sync_and_async_callbacks_both_receive_alerts() -> None:
    sync_seen: list[Alert] = []
    async_seen: list[Alert] = []

    async def deliver(alert: Alert) -> None:
        await asyncio.sleep(0)
        async_seen.append(alert)

    alerts = AlertManager([sync_seen.append])
    alerts.add_callback(deliver)
    alerts.budget_used("daily", "d", 0.5)
    assert len(sync_seen) == 1  # inline
    await alerts.drain()
    assert async_seen == sync_seen


async def test_failing_callbacks_are_logged_and_isolated() -> None:
    seen: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise ValueError("boom")

    async def broken_later(alert: Alert) -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    alerts = AlertManager([broken, broken_later, seen.append])
    with capture_logs() as logs:
        alerts.budget_used("daily", "d", 0.6)
        await alerts.drain()
    assert [a.threshold for a in seen] == [0.5]
    failures = [e for e in logs if e["event"] == "llm.alert.callback_failed"]
    assert [(e["error"], e["log_level"]) for e in failures] == [
        ("ValueError", "error"),
        ("KeyError", "error"),
    ]
    assert failures[0]["callback"].endswith("broken")


def test_async_callback_without_a_running_loop_is_logged_not_leaked() -> None:
    seen: list[Alert] = []

    async def deliver(alert: Alert) -> None:
        seen.append(alert)

    alerts = AlertManager([deliver])
    with warnings.catch_warnings(record=True) as caught, capture_logs() as logs:
        warnings.simplefilter("always")
        alerts.budget_used("daily", "d", 0.5)
        gc.collect()
    assert seen == []
    assert [e["event"] for e in logs] == ["llm.alert", "llm.alert.callback_failed"]
    assert "running event loop" in logs[1]["detail"]
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_drain_with_nothing_pending_returns() -> None:
    await AlertManager().drain()


def test_error_rate_alert_fires_once_and_rearms_below_threshold() -> None:
    clock = FakeClock(start=0.0)
    monitor = LLMMonitor(clock=clock.monotonic)
    seen: list[Alert] = []
    alerts = AlertManager(
        [seen.append], error_rate_threshold=0.25, error_rate_window=60, min_requests=4
    )

    def calls(failed: int, succeeded: int) -> None:
        for _ in range(failed):
            monitor.record_request(success=False, tokens=0, cost=0.0, response_time=1.0)
        for _ in range(succeeded):
            monitor.record_request(success=True, tokens=0, cost=0.0, response_time=1.0)
        alerts.check_error_rate(monitor)

    calls(failed=3, succeeded=0)
    assert seen == []  # 3 calls: too few to judge
    calls(failed=0, succeeded=1)
    (alert,) = seen
    assert (alert.kind, alert.name, alert.threshold, alert.value) == (
        "error_rate",
        "error_rate",
        0.25,
        0.75,
    )
    assert "75%" in alert.message
    calls(failed=5, succeeded=0)
    assert len(seen) == 1  # still failing: no repeat

    clock.advance(61)
    calls(failed=0, succeeded=0)
    assert len(seen) == 1  # an empty window proves nothing either way
    calls(failed=1, succeeded=0)
    assert len(seen) == 1  # still armed off: one call is too few to re-arm
    calls(failed=0, succeeded=3)  # 1 in 4 failed: at the threshold, not below
    assert len(seen) == 1
    calls(failed=0, succeeded=4)  # 1 in 8 failed: re-armed
    assert len(seen) == 1
    calls(failed=3, succeeded=0)  # 4 in 11 failed
    assert [a.value for a in seen] == [0.75, pytest.approx(4 / 11)]


def test_error_rate_alerts_are_off_by_default() -> None:
    monitor = LLMMonitor()
    for _ in range(50):
        monitor.record_request(success=False, tokens=0, cost=0.0, response_time=1.0)
    seen, alerts = collecting()
    alerts.check_error_rate(monitor)
    assert seen == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_thresholds": (0.5, 0.0)},
        {"error_rate_threshold": 1.5},
        {"error_rate_threshold": 0.0},
        {"error_rate_window": 0.0},
        {"min_requests": 0},
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        AlertManager(**kwargs)
