"""RedisBudget against a real redis-server: replicas share one budget, holds expire, Redis
outages fail closed (or open, when configured) and settle once Redis is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from aiecs_llm.accounting.budget import Budget
from aiecs_llm.errors import BudgetExceededError
from aiecs_llm.redis.budget import RedisBudget
from aiecs_llm.redis.connection import RedisConnection
from tests.redis_server import RedisServer, free_port


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def replica(url: str, *budgets: Budget, **options: object) -> RedisBudget:
    """A budget as one replica holds it: its own connection to the shared server.

    With a generous socket timeout: a loaded machine must not look like a Redis outage (which
    would refuse holds, fail closed). An outage in these tests is a server that is not there.
    """
    connection = RedisConnection(url + "?socket_timeout=30")
    return RedisBudget(budgets or (Budget("daily", 1.0),), connection, **options)  # type: ignore[arg-type]


async def test_replicas_never_hold_more_than_the_limit_together(redis):
    replicas = [replica(redis.url, Budget("daily", 1.0), Budget("monthly", 5.0)) for _ in range(4)]
    outcomes = await asyncio.gather(
        *(replicas[i % 4].hold(0.03, {}) for i in range(100)), return_exceptions=True
    )
    held = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert len(held) == 33  # 33 x 0.03 = 0.99; a 34th would cross 1.0
    assert len(refused) == 67
    assert all(error.code == "budget_exceeded" for error in refused)
    status = {s.name: s for s in await replicas[0].status()}
    assert status["daily"].reserved == pytest.approx(0.99)
    assert status["monthly"].reserved == pytest.approx(0.99)


async def test_settling_books_the_real_cost_and_frees_the_rest(redis):
    first, second = replica(redis.url), replica(redis.url)
    hold = await first.hold(0.6, {})
    with pytest.raises(BudgetExceededError):
        await second.hold(0.6, {})
    first.settle(hold, 0.1)
    first.settle(hold, 0.1)  # idempotent
    await first.flush()
    (status,) = await second.status()
    assert (status.spent, status.reserved) == (pytest.approx(0.1), 0.0)
    await second.hold(0.6, {})


async def test_tag_budgets_only_hold_their_calls(redis):
    shared = replica(redis.url, Budget("daily", 10.0), Budget("daily", 0.5, {"team": "a"}))
    await shared.hold(0.4, {"team": "a"})
    with pytest.raises(BudgetExceededError, match="daily:team=a"):
        await shared.hold(0.2, {"team": "a"})
    await shared.hold(0.2, {"team": "b"})


async def test_a_crashed_replicas_holds_expire(redis):
    crashed = replica(redis.url, hold_ttl=2.0)  # long enough for the next step on a busy machine
    await crashed.hold(1.0, {})  # never settled: the replica died
    survivor = replica(redis.url)
    with pytest.raises(BudgetExceededError):
        await survivor.hold(0.5, {})
    await asyncio.sleep(2.1)
    with capture_logs() as logs:
        await survivor.hold(0.5, {})
    assert {"event": "llm.budget.holds_expired", "holds": 1, "log_level": "warning"} in logs


class FixedSpend:
    def __init__(self, spent: float) -> None:
        self.spent = spent
        self.asked = 0

    def spend(self, *, since=None, until=None, tags=None) -> float:
        self.asked += 1
        return self.spent


async def test_a_period_redis_does_not_know_is_seeded_from_the_ledger(redis):
    ledger = FixedSpend(0.9)
    budget = replica(redis.url, ledger=ledger)
    with pytest.raises(BudgetExceededError, match=r"spent \$0\.9000"):
        await budget.hold(0.2, {})
    await budget.hold(0.05, {})
    assert ledger.asked == 1  # seeded once, then Redis has the books
    await budget.connection.run(lambda client: client.flushall())  # Redis lost its data
    ledger.spent = 0.95
    with pytest.raises(BudgetExceededError, match=r"spent \$0\.9500"):
        await budget.hold(0.1, {})
    assert ledger.asked == 2


async def test_unreachable_redis_fails_closed_fast_and_without_the_password():
    import redis.asyncio  # noqa: F401 - imported before the clock starts, as a running service has

    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    budget = replica(url)
    started = time.monotonic()
    with capture_logs() as logs:
        for _ in range(20):
            with pytest.raises(BudgetExceededError) as refused:
                await budget.hold(0.1, {})
    # One refused connection (a closed port answers at once), then no waiting at all: a few
    # milliseconds, where a 1 s connect timeout per call would take 20 s.
    assert time.monotonic() - started < 3.0
    assert refused.value.code == "budget_unavailable"
    unavailable = [e for e in logs if e["event"] == "llm.state.unavailable"]
    assert len(unavailable) == 1  # logged once per outage, not per call
    text = f"{refused.value} {refused.value!r} {logs} {budget!r} {budget.connection!r}"
    assert "hunter2" not in text
    assert "redis://:***@127.0.0.1" in text


async def test_fail_open_lets_calls_through_and_books_them_when_redis_returns():
    server = RedisServer()
    budget = replica(server.url, fail_open=True)
    with capture_logs() as logs:
        hold = await budget.hold(0.4, {})
    assert any(e["event"] == "llm.budget.fail_open" for e in logs)
    budget.settle(hold, 0.25)
    assert budget.unsettled == 1
    with server:
        await asyncio.wait_for(budget.flush(), timeout=15)
        (status,) = await budget.status()
    assert (status.spent, status.reserved) == (pytest.approx(0.25), 0.0)


async def test_flush_gives_up_after_its_timeout_and_says_what_is_left():
    budget = replica(RedisServer().url, fail_open=True)  # never started: Redis stays away
    hold = await budget.hold(0.1, {})
    budget.settle(hold, 0.1)
    started = time.monotonic()
    with capture_logs() as logs:
        await budget.flush(timeout=0.3)
    assert time.monotonic() - started < 10  # without the timeout: until Redis is back, never
    assert {"event": "llm.budget.unsettled", "settlements": 1, "log_level": "warning"} in logs


async def test_every_budget_key_expires(redis):
    budget = replica(redis.url, ledger=FixedSpend(2.0))  # seeded over the limit: refused
    with pytest.raises(BudgetExceededError):
        await budget.hold(0.1, {})
    other = replica(redis.url, Budget("monthly", 5.0))
    other.settle(await other.hold(0.1, {}), 0.05)
    await other.flush()
    names = await budget.connection.run(lambda client: client.keys("*"))
    assert names
    for name in names:
        assert await budget.connection.run(lambda client, name=name: client.ttl(name)) > 0, name
