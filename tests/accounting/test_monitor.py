"""LLMMonitor: the spec's figures, the richer breakdowns, bounded memory, windows, threads."""

from __future__ import annotations

import json
import random
import threading

import pytest

from aiecs_llm.accounting.monitor import DEFAULT_MONITOR, LLMMonitor
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.resilience.breaker import CircuitBreaker, Route
from aiecs_llm.resilience.keys import KeyPool
from tests.fake_clock import FakeClock


def rec(**fields: object) -> RequestRecord:
    values: dict[str, object] = {"provider": "openai", "model": "gpt-4o-mini"}
    values.update(fields)
    return RequestRecord.model_validate(values)


def test_default_monitor_is_a_monitor() -> None:
    assert isinstance(DEFAULT_MONITOR, LLMMonitor)


def test_empty_monitor_reports_nothing_failed() -> None:
    metrics = LLMMonitor().get_metrics()
    assert metrics["total_requests"] == 0
    assert metrics["success_rate"] == 100.0
    assert metrics["error_rate"] == 0.0
    assert metrics["avg_response_time"] == 0.0
    assert metrics["total_cost"] == 0.0
    assert metrics["latency_p50"] is None
    assert metrics["latency_p99"] is None
    assert metrics["time_to_first_chunk_avg"] is None
    assert metrics["cache_hit_rate"] == 0.0
    assert metrics["errors_by_class"] == {}
    assert "circuits" not in metrics
    assert "keys" not in metrics
    json.dumps(metrics)  # plain values only


def test_record_request_keeps_the_spec_figures() -> None:
    monitor = LLMMonitor()
    monitor.record_request(success=True, tokens=100, cost=0.01, response_time=1.0)
    monitor.record_request(success=True, tokens=50, cost=0.02, response_time=2.0)
    monitor.record_request(success=False, tokens=0, cost=0.0, response_time=6.0)
    metrics = monitor.get_metrics()
    assert metrics["total_requests"] == 3
    assert metrics["successful_requests"] == 2
    assert metrics["failed_requests"] == 1
    assert metrics["total_tokens"] == 150
    assert metrics["total_cost"] == pytest.approx(0.03)
    assert metrics["avg_response_time"] == pytest.approx(3.0)
    assert metrics["success_rate"] == pytest.approx(200 / 3)
    assert metrics["error_rate"] == pytest.approx(100 / 3)
    assert metrics["errors_by_class"] == {"unknown": 1}
    # No model to file the cost or tokens under: only the totals move.
    assert metrics["cost_by_model"] == {}
    assert metrics["prompt_tokens"] == 0
    assert metrics["cache_hits"] == metrics["cache_misses"] == 0


def test_records_are_broken_down_by_hand_computed_figures() -> None:
    monitor = LLMMonitor()
    monitor.record(
        rec(
            prompt_tokens=100,
            completion_tokens=50,
            cached_tokens=20,
            cost=0.001,
            latency=1.0,
            retries=1,
        )
    )
    monitor.record(
        rec(
            provider="anthropic",
            model="claude-sonnet-4",
            stream=True,
            prompt_tokens=200,
            completion_tokens=100,
            reasoning_tokens=30,
            cost=0.01,
            latency=2.0,
            time_to_first_chunk=0.5,
            fallback_from="gpt-4o",
        )
    )
    monitor.record(
        rec(outcome="error", error_class="RateLimitError", status_code=429, latency=3.0, retries=2)
    )
    monitor.record(rec(outcome="cancelled", stream=True, latency=4.0, time_to_first_chunk=1.5))
    monitor.record(
        rec(prompt_tokens=100, completion_tokens=50, cost=0.0, cache_hit=True, latency=0.0)
    )
    monitor.record(
        rec(provider="custom", model="mystery", prompt_tokens=10, completion_tokens=5, latency=5.0)
    )
    monitor.record(rec(outcome="error", error_class="AuthenticationError", status_code=401))

    m = monitor.get_metrics()
    assert (m["total_requests"], m["successful_requests"]) == (7, 4)
    assert (m["failed_requests"], m["cancelled_requests"]) == (2, 1)
    # Cancelled calls count in neither rate.
    assert m["success_rate"] == pytest.approx(4 / 7 * 100)
    assert m["error_rate"] == pytest.approx(2 / 7 * 100)
    assert m["errors_by_class"] == {"RateLimitError": 1, "AuthenticationError": 1}
    assert m["prompt_tokens"] == 410
    assert m["completion_tokens"] == 205
    assert m["total_tokens"] == 615
    assert m["cached_tokens"] == 20
    assert m["reasoning_tokens"] == 30
    assert m["total_cost"] == pytest.approx(0.011)
    assert m["cost_by_model"] == pytest.approx({"gpt-4o-mini": 0.001, "claude-sonnet-4": 0.01})
    assert m["cost_by_provider"] == pytest.approx({"openai": 0.001, "anthropic": 0.01})
    assert m["cost_by_provider_model"]["openai"] == pytest.approx({"gpt-4o-mini": 0.001})
    assert m["requests_by_model"] == {"gpt-4o-mini": 5, "claude-sonnet-4": 1, "mystery": 1}
    # The unknown-price success is unpriced; failures that used no tokens are not.
    assert m["unpriced_requests"] == 1
    # Six calls had a latency: 1 + 2 + 3 + 4 + 0 + 5 = 15.
    assert m["latency_count"] == 6
    assert m["avg_response_time"] == pytest.approx(2.5)
    assert m["latency_p50"] == pytest.approx(2.5)  # sorted 0,1,2,3,4,5
    assert m["latency_p95"] == pytest.approx(4.75)
    # Streams: first chunks after 0.5 s and 1.5 s.
    assert m["time_to_first_chunk_count"] == 2
    assert m["time_to_first_chunk_avg"] == pytest.approx(1.0)
    assert m["time_to_first_chunk_p50"] == pytest.approx(1.0)
    assert m["time_to_first_chunk_p95"] == pytest.approx(1.45)
    assert (m["cache_hits"], m["cache_misses"]) == (1, 6)
    assert m["cache_hit_rate"] == pytest.approx(100 / 7)
    assert m["retries"] == 3
    assert m["fallbacks"] == 1
    json.dumps(m)


def test_percentiles_interpolate_between_ranks() -> None:
    monitor = LLMMonitor()
    for latency in random.Random(7).sample(range(1, 101), 100):
        monitor.record(rec(latency=float(latency)))
    m = monitor.get_metrics()
    assert m["latency_p50"] == pytest.approx(50.5)
    assert m["latency_p95"] == pytest.approx(95.05)
    assert m["latency_p99"] == pytest.approx(99.01)


def test_a_single_latency_is_every_percentile() -> None:
    monitor = LLMMonitor()
    monitor.record(rec(latency=0.25))
    m = monitor.get_metrics()
    assert m["latency_p50"] == m["latency_p95"] == m["latency_p99"] == 0.25


def test_memory_stays_bounded_over_100_000_records() -> None:
    monitor = LLMMonitor(latency_window=1000)
    template = rec(stream=True, prompt_tokens=1, completion_tokens=1, cost=0.0)
    for i in range(100_000):
        monitor.record(
            template.model_copy(
                update={"latency": float(i), "time_to_first_chunk": float(i), "outcome": "success"}
            )
        )
    assert len(monitor._latencies) == 1000
    assert len(monitor._ttfcs) == 1000
    assert len(monitor._ended_at) <= 2000
    assert len(monitor._failed_so_far) <= 2000
    m = monitor.get_metrics()
    assert m["total_requests"] == 100_000
    assert m["total_tokens"] == 200_000
    # Percentiles cover the last 1000 calls (latencies 99000..99999); the average covers all.
    assert m["latency_p50"] == pytest.approx(99_499.5)
    assert m["avg_response_time"] == pytest.approx(49_999.5)
    assert monitor.calls_in_window(1e9) == (1000, 0)


def test_error_rate_counts_calls_that_ended_in_the_window() -> None:
    clock = FakeClock(start=0.0)
    monitor = LLMMonitor(clock=clock.monotonic)
    assert monitor.error_rate(60) is None
    for _ in range(3):
        monitor.record(rec(outcome="error", error_class="ProviderNotAvailableError"))
    clock.advance(100)
    monitor.record(rec())
    monitor.record(rec(outcome="cancelled"))
    assert monitor.error_rate(60) == 0.0
    assert monitor.calls_in_window(60) == (2, 0)
    assert monitor.error_rate(200) == pytest.approx(3 / 5)
    assert monitor.calls_in_window(200) == (5, 3)
    clock.advance(59.5)
    assert monitor.error_rate(60) == 0.0
    clock.advance(1)
    assert monitor.error_rate(60) is None


def test_error_rate_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LLMMonitor().error_rate(0)


def test_latency_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="latency_window"):
        LLMMonitor(latency_window=0)


def test_windowed_counts_stay_exact_while_old_calls_are_dropped() -> None:
    clock = FakeClock(start=0.0)
    monitor = LLMMonitor(latency_window=7, clock=clock.monotonic)
    outcomes: list[tuple[float, bool]] = []
    rng = random.Random(3)
    for _ in range(200):
        clock.advance(rng.choice([0.0, 0.5, 1.0]))
        failed = rng.random() < 0.4
        monitor.record_request(success=not failed, tokens=0, cost=0.0, response_time=0.1)
        outcomes.append((clock.monotonic(), failed))
        for window in (0.7, 2.0, 5.0, 1e6):
            kept = outcomes[-7:]
            in_window = [f for t, f in kept if t > clock.monotonic() - window]
            assert monitor.calls_in_window(window) == (len(in_window), sum(in_window))


def test_a_clock_that_steps_back_does_not_break_the_window() -> None:
    times = iter([10.0, 5.0, 11.0, 11.0])
    monitor = LLMMonitor(clock=lambda: next(times))
    monitor.record(rec(outcome="error", error_class="X"))
    monitor.record(rec())
    monitor.record(rec())
    assert monitor.calls_in_window(2.0) == (3, 1)


def test_reset_forgets_calls_but_keeps_the_state() -> None:
    monitor = LLMMonitor()
    monitor.attach_state(lambda: {"circuits": {}, "keys": {}})
    monitor.record(rec(cost=1.0, latency=1.0, outcome="error", error_class="X"))
    monitor.reset()
    m = monitor.get_metrics()
    assert m["total_requests"] == 0
    assert m["total_cost"] == 0.0
    assert m["errors_by_class"] == {}
    assert m["latency_p50"] is None
    assert monitor.error_rate(1e9) is None
    assert m["circuits"] == {}


def test_attached_state_is_reported_as_plain_dicts() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30, clock=clock)
    broken, fine = Route("openai", "gpt-4o"), Route("anthropic", "claude-sonnet-4")
    breaker.record_failure(broken)
    breaker.record_failure(broken)
    breaker.record_success(fine)
    pool = KeyPool("openai", ["sk-test-aaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbb"], clock=clock)
    pool.rejected("sk-test-aaaaaaaaaaaaaaaa")
    monitor = LLMMonitor()
    monitor.attach_state(
        lambda: {"circuits": breaker.snapshot(), "keys": {"openai": pool.snapshot()}}
    )

    m = monitor.get_metrics()
    assert m["circuits"]["openai/gpt-4o"] == {
        "state": "open",
        "consecutive_failures": 2,
        "opened_count": 1,
        "retry_in": 30.0,
    }
    assert m["circuits"]["anthropic/claude-sonnet-4"]["state"] == "closed"
    keys = m["keys"]["openai"]
    assert [key["state"] for key in keys] == ["retired", "active"]
    assert all(key["fingerprint"].startswith("sha256:") for key in keys)
    text = json.dumps(m)
    assert "sk-test" not in text


def test_recording_from_many_threads_loses_nothing() -> None:
    monitor = LLMMonitor(latency_window=100)
    record = rec(prompt_tokens=2, completion_tokens=1, cost=0.5, latency=0.1)

    def work() -> None:
        for i in range(2000):
            if i % 2:
                monitor.record(record)
            else:
                monitor.record_request(success=False, tokens=1, cost=0.25, response_time=0.2)
            if i % 500 == 0:
                monitor.get_metrics()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    m = monitor.get_metrics()
    assert m["total_requests"] == 16_000
    assert m["successful_requests"] == m["failed_requests"] == 8000
    assert m["total_tokens"] == 8000 * 3 + 8000
    assert m["total_cost"] == pytest.approx(8000 * 0.75)
    # Which thread's calls were last is up to the scheduler; how many are kept is not.
    assert monitor.calls_in_window(1e9)[0] == 100
