"""CircuitBreaker: threshold, rest, a single half-open probe, recovery, independent routes."""

import asyncio

import pytest
from structlog.testing import capture_logs

from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.resilience.breaker import (
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_FAILURE_THRESHOLD,
    CircuitBreaker,
    Route,
    RouteHealth,
)
from tests.fake_clock import FakeClock

ROUTE = Route("openai", "gpt-4o-mini", fingerprint("sk-key-aaaaaaaaaaaaaaaa"))
OTHER = Route("anthropic", "claude-haiku")


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker(failure_threshold=3, cooldown=30.0, clock=clock)


def fail(breaker, route, times):
    for _ in range(times):
        breaker.record_failure(route)


def test_defaults():
    assert (DEFAULT_FAILURE_THRESHOLD, DEFAULT_BREAKER_COOLDOWN) == (5, 30.0)
    breaker = CircuitBreaker()
    fail(breaker, ROUTE, 4)
    assert breaker.state(ROUTE) == "closed"
    breaker.record_failure(ROUTE)
    assert breaker.state(ROUTE) == "open"


def test_route_label_and_key_id_must_be_a_fingerprint():
    assert ROUTE.label == f"openai/gpt-4o-mini@{fingerprint('sk-key-aaaaaaaaaaaaaaaa')}"
    assert OTHER.label == "anthropic/claude-haiku"
    with pytest.raises(ValueError, match="fingerprint") as caught:
        Route("openai", "gpt-4o", "sk-canary-0123456789abcdef")
    assert "canary" not in str(caught.value)


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"cooldown": 0}])
def test_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)


def test_opens_at_the_threshold_of_consecutive_failures(breaker):
    fail(breaker, ROUTE, 2)
    breaker.record_success(ROUTE)
    fail(breaker, ROUTE, 2)
    assert breaker.state(ROUTE) == "closed"
    assert breaker.allow(ROUTE)
    with capture_logs() as events:
        breaker.record_failure(ROUTE)
    assert breaker.state(ROUTE) == "open"
    assert events == [
        {
            "event": "llm.breaker.opened",
            "log_level": "warning",
            "route": ROUTE.label,
            "failures": 3,
            "cooldown": 30.0,
        }
    ]


def test_an_open_route_is_skipped_until_the_cooldown_ends(breaker, clock):
    fail(breaker, ROUTE, 3)
    assert not breaker.allow(ROUTE)
    assert breaker.retry_in(ROUTE) == pytest.approx(30.0)
    clock.advance(29.0)
    assert not breaker.allow(ROUTE)
    assert breaker.retry_in(ROUTE) == pytest.approx(1.0)
    # A late failure of a call let through before the route opened does not extend the rest.
    breaker.record_failure(ROUTE)
    assert breaker.retry_in(ROUTE) == pytest.approx(1.0)
    clock.advance(1.0)
    assert breaker.state(ROUTE) == "half_open"
    assert breaker.retry_in(ROUTE) == 0.0


async def test_half_open_lets_exactly_one_concurrent_caller_probe(breaker, clock):
    fail(breaker, ROUTE, 3)
    clock.advance(30.0)
    allowed = []

    async def caller(number):
        await asyncio.sleep(0)
        if breaker.allow(ROUTE):
            allowed.append(number)

    await asyncio.gather(*(caller(n) for n in range(20)))
    assert len(allowed) == 1
    assert breaker.state(ROUTE) == "half_open"
    assert breaker.retry_in(ROUTE) == pytest.approx(30.0)  # until the probe would be given up
    clock.advance(10.0)
    assert not breaker.allow(ROUTE)


def test_a_successful_probe_closes_the_route(breaker, clock):
    fail(breaker, ROUTE, 3)
    clock.advance(30.0)
    assert breaker.allow(ROUTE)
    with capture_logs() as events:
        breaker.record_success(ROUTE)
    assert events == [{"event": "llm.breaker.closed", "log_level": "info", "route": ROUTE.label}]
    assert breaker.state(ROUTE) == "closed"
    assert all(breaker.allow(ROUTE) for _ in range(5))
    fail(breaker, ROUTE, 2)
    assert breaker.state(ROUTE) == "closed"  # the count started again from zero


def test_a_failed_probe_reopens_for_another_cooldown(breaker, clock):
    fail(breaker, ROUTE, 3)
    clock.advance(30.0)
    assert breaker.allow(ROUTE)
    with capture_logs() as events:
        breaker.record_failure(ROUTE)
    assert [event["event"] for event in events] == ["llm.breaker.opened"]
    assert breaker.state(ROUTE) == "open"
    assert not breaker.allow(ROUTE)
    assert breaker.retry_in(ROUTE) == pytest.approx(30.0)
    clock.advance(30.0)
    assert breaker.allow(ROUTE)
    assert not breaker.allow(ROUTE)
    assert breaker.snapshot()[ROUTE.label].opened_count == 2


def test_an_abandoned_probe_frees_the_route_after_a_cooldown(breaker, clock):
    fail(breaker, ROUTE, 3)
    clock.advance(30.0)
    assert breaker.allow(ROUTE)  # this caller is cancelled and never reports
    clock.advance(29.0)
    assert not breaker.allow(ROUTE)
    clock.advance(1.0)
    assert breaker.allow(ROUTE)
    assert not breaker.allow(ROUTE)
    breaker.record_success(ROUTE)
    assert breaker.state(ROUTE) == "closed"


def test_routes_are_independent(breaker, clock):
    same_model_other_key = Route("openai", "gpt-4o-mini", fingerprint("sk-key-bbbbbbbbbbbbbbbb"))
    fail(breaker, ROUTE, 3)
    fail(breaker, OTHER, 2)
    assert not breaker.allow(ROUTE)
    assert breaker.allow(OTHER)
    assert breaker.allow(same_model_other_key)
    assert breaker.state(same_model_other_key) == "closed"
    assert breaker.retry_in(OTHER) == 0.0


def test_snapshot_reports_every_route_by_label(breaker, clock):
    fail(breaker, ROUTE, 3)
    fail(breaker, OTHER, 1)
    clock.advance(10.0)
    assert breaker.snapshot() == {
        ROUTE.label: RouteHealth(
            state="open", consecutive_failures=3, opened_count=1, retry_in=pytest.approx(20.0)
        ),
        OTHER.label: RouteHealth(
            state="closed", consecutive_failures=1, opened_count=0, retry_in=0.0
        ),
    }
    clock.advance(20.0)
    assert breaker.snapshot()[ROUTE.label].state == "half_open"
