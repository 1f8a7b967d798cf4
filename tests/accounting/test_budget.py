"""BudgetController: reservations that cannot overshoot, periods by timezone, restart state."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import aiecs_llm
from aiecs_llm.accounting.budget import Budget, BudgetController


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordedSpend:
    """Spend already on record, as a ledger reports it (the budget's real input)."""

    def __init__(self, entries):
        self.entries = entries  # (when, cost, tags)
        self.queries = []

    def spend(self, *, since=None, until=None, tags=None):
        self.queries.append((since, until, tags))
        return sum(
            cost
            for when, cost, entry_tags in self.entries
            if (since is None or when >= since)
            and (until is None or when < until)
            and all(entry_tags.get(k) == v for k, v in (tags or {}).items())
        )


NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_reserve_then_settle_to_the_real_cost():
    budget = BudgetController([Budget("daily", 1.0)], clock=Clock(NOON))
    hold = budget.reserve(0.4, {})
    (status,) = budget.status()
    assert (status.spent, status.reserved) == (0.0, 0.4)
    budget.settle(hold, 0.1)
    budget.settle(hold, 0.1)  # idempotent
    (status,) = budget.status()
    assert (status.spent, status.reserved) == (0.1, 0.0)
    assert status.remaining == pytest.approx(0.9)


def test_a_request_that_would_cross_the_limit_is_refused():
    budget = BudgetController([Budget("daily", 1.0)], clock=Clock(NOON))
    budget.reserve(0.7, {})
    with pytest.raises(aiecs_llm.BudgetExceededError, match="daily") as caught:
        budget.reserve(0.4, {})
    assert caught.value.code == "budget_exceeded"
    budget.reserve(0.3, {})  # exactly up to the limit is allowed


async def test_concurrent_reservations_never_exceed_the_limit():
    budget = BudgetController([Budget("daily", 1.0)], clock=Clock(NOON))
    granted, refused = [], []

    async def call():
        try:
            hold = budget.reserve(0.03, {})
        except aiecs_llm.BudgetExceededError:
            refused.append(1)
            return
        granted.append(hold)
        await asyncio.sleep(0.01)
        budget.settle(hold, 0.03)

    await asyncio.gather(*(call() for _ in range(100)))
    assert len(granted) == 33
    assert len(refused) == 67
    (status,) = budget.status()
    assert status.spent == pytest.approx(0.99)
    assert status.spent <= 1.0


def test_tag_budgets_apply_only_to_their_calls():
    budget = BudgetController(
        [Budget("daily", 10.0), Budget("daily", 0.5, {"service": "billing"})], clock=Clock(NOON)
    )
    budget.reserve(0.4, {"service": "billing", "user": "u1"})
    with pytest.raises(aiecs_llm.BudgetExceededError, match="service=billing"):
        budget.reserve(0.2, {"service": "billing"})
    budget.reserve(5.0, {"service": "search"})


def test_days_follow_the_configured_timezone():
    clock = Clock(datetime(2026, 11, 25, 22, 30, tzinfo=UTC))  # 23:30 in Berlin
    budget = BudgetController([Budget("daily", 1.0)], timezone="Europe/Berlin", clock=clock)
    budget.settle(budget.reserve(0.9, {}), 0.9)
    with pytest.raises(aiecs_llm.BudgetExceededError):
        budget.reserve(0.2, {})
    clock.now += timedelta(hours=1)  # 00:30 in Berlin, still 25 Nov in UTC
    budget.reserve(0.2, {})
    assert budget.status()[0].period_key == "2026-11-26"


def test_months_roll_over():
    clock = Clock(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    budget = BudgetController([Budget("monthly", 1.0)], clock=clock)
    budget.settle(budget.reserve(1.0, {}), 1.0)
    with pytest.raises(aiecs_llm.BudgetExceededError):
        budget.reserve(0.01, {})
    clock.now += timedelta(hours=2)
    budget.reserve(0.5, {})
    assert budget.status()[0].period_key == "2026-12"


def test_spend_on_record_survives_a_restart():
    today = NOON - timedelta(hours=1)
    yesterday = NOON - timedelta(days=1)
    recorded = RecordedSpend([(today, 0.6, {}), (yesterday, 5.0, {}), (today, 0.2, {"a": "b"})])
    budget = BudgetController([Budget("daily", 1.0)], ledger=recorded, clock=Clock(NOON))
    with pytest.raises(aiecs_llm.BudgetExceededError):
        budget.reserve(0.25, {})  # 0.8 already spent today
    budget.reserve(0.2, {})
    since, until, _ = recorded.queries[0]
    assert (since, until) == (
        datetime(2026, 11, 25, tzinfo=UTC),
        datetime(2026, 11, 26, tzinfo=UTC),
    )


def test_alerts_hear_of_every_settlement():
    heard = []

    class Listener:
        def budget_used(self, name, period_key, fraction):
            heard.append((name, period_key, round(fraction, 3)))

    budget = BudgetController([Budget("daily", 2.0)], alerts=Listener(), clock=Clock(NOON))
    budget.settle(budget.reserve(1.5, {}), 1.0)
    assert heard == [("daily", "2026-11-25", 0.5)]


def test_bad_configuration():
    with pytest.raises(aiecs_llm.ConfigurationError, match="timezone"):
        BudgetController([], timezone="Mars/Olympus")
    with pytest.raises(aiecs_llm.ConfigurationError, match="negative"):
        BudgetController([Budget("daily", -1.0)])
