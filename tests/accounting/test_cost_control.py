"""Budgets, the ledger, metrics and alerts through the public client, on the local server."""

import asyncio
import contextlib

import pytest

import aiecs_llm
from aiecs_llm import LLMMessage, OpenAIClient
from aiecs_llm.accounting.alerts import AlertManager
from aiecs_llm.accounting.budget import Budget, BudgetController
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.config.settings import Budgets
from tests.fake_provider import Reply
from tests.servers import settings_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]
# The fake server's default answer: 22 prompt and 8 completion tokens of gpt-4o-mini.
ACTUAL_COST = 22 * 0.15e-6 + 8 * 0.60e-6


@pytest.fixture
def ledger():
    with UsageLedger() as ledger:
        yield ledger


async def test_concurrent_calls_never_overshoot_the_budget(server, ledger):
    budget = BudgetController([Budget("daily", 0.001)], ledger=ledger)
    async with OpenAIClient(
        settings=settings_for(server), ledger=ledger, budget=budget, monitor=LLMMonitor()
    ) as client:
        results = await asyncio.gather(
            *(client.generate_text(MESSAGES, max_tokens=100) for _ in range(100)),
            return_exceptions=True,
        )
    answered = [r for r in results if isinstance(r, aiecs_llm.LLMResponse)]
    refused = [r for r in results if isinstance(r, aiecs_llm.BudgetExceededError)]
    assert len(answered) + len(refused) == 100
    assert answered
    assert refused
    assert len(server.requests) == len(answered)  # refused calls sent nothing
    (status,) = budget.status()
    assert status.spent == pytest.approx(len(answered) * ACTUAL_COST)
    assert status.spent + status.reserved <= 0.001
    assert status.reserved == 0
    assert ledger.count() == 100  # every call, refused ones too, exactly once
    assert ledger.spend() == pytest.approx(status.spent)
    refused_rows = [row for row in ledger.rows() if row.error_class == "BudgetExceededError"]
    assert len(refused_rows) == len(refused)


async def test_the_ledger_records_every_kind_of_outcome_with_tags(server, ledger):
    server.enqueue(Reply.ok(), Reply.invalid_api_key(), Reply.ok("a b c", chunks=3), Reply.hang())
    monitor = LLMMonitor()
    async with OpenAIClient(
        settings=settings_for(server), ledger=ledger, monitor=monitor, tags={"service": "billing"}
    ) as client:
        await client.generate_text(MESSAGES, tags={"task_id": "t-1"})
        with pytest.raises(aiecs_llm.AuthenticationError):
            await client.generate_text(MESSAGES)
        async for _ in client.stream_text(MESSAGES):
            pass
        task = asyncio.create_task(client.generate_text(MESSAGES))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    rows = ledger.rows()
    assert [(row.outcome, row.stream) for row in rows] == [
        ("success", False),
        ("error", False),
        ("success", True),
        ("cancelled", False),
    ]
    assert rows[0].tags == {"service": "billing", "task_id": "t-1"}
    assert all(row.tags["service"] == "billing" for row in rows)
    assert rows[0].cost == pytest.approx(ACTUAL_COST)
    assert rows[1].error_class == "AuthenticationError"
    assert rows[1].status_code == 401
    assert rows[2].time_to_first_chunk is not None
    metrics = monitor.get_metrics()
    assert metrics["total_requests"] == 4
    assert metrics["successful_requests"] == 2
    assert metrics["failed_requests"] == 1
    assert metrics["cancelled_requests"] == 1
    assert metrics["total_cost"] == pytest.approx(ledger.spend())


async def test_retries_and_fallbacks_are_counted(server, ledger, monkeypatch):
    from aiecs_llm.resilience import retry

    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)
    server.enqueue(Reply.server_error(), Reply.model_not_found(), Reply.ok())
    settings = settings_for(server, fallbacks={"openai/gpt-4o": ["anthropic/claude-haiku-4-5"]})
    async with aiecs_llm.LiteLLMClient(
        "openai/gpt-4o", settings=settings, ledger=ledger, max_retries=1
    ) as client:
        await client.generate_text(MESSAGES)
    (row,) = ledger.rows()
    assert row.retries == 2
    assert row.fallback_from == "openai/gpt-4o"
    assert row.provider == "anthropic"


async def test_budget_alerts_fire_once_per_threshold(server, ledger):
    alerts = []
    manager = AlertManager([alerts.append])
    budget = BudgetController([Budget("daily", ACTUAL_COST * 4)], alerts=manager)
    async with OpenAIClient(
        settings=settings_for(server), budget=budget, alerts=manager, max_retries=0
    ) as client:
        for _ in range(4):
            await client.generate_text(MESSAGES, max_tokens=1)
    assert [alert.threshold for alert in alerts] == [0.5, 0.8, 1.0]
    assert {alert.kind for alert in alerts} == {"budget"}


async def test_error_rate_alert(server):
    alerts = []
    manager = AlertManager([alerts.append], error_rate_threshold=0.5, min_requests=4)
    server.enqueue(*[Reply.invalid_api_key()] * 3)
    async with OpenAIClient(
        settings=settings_for(server), alerts=manager, monitor=LLMMonitor(), max_retries=0
    ) as client:
        for _ in range(4):
            with contextlib.suppress(aiecs_llm.AuthenticationError):
                await client.generate_text(MESSAGES)
    assert [alert.kind for alert in alerts] == ["error_rate"]


async def test_budgets_from_configuration_survive_a_restart(server, tmp_path):
    path = tmp_path / "usage.db"
    settings = settings_for(server)
    settings = settings.model_copy(
        update={
            "budgets": Budgets(daily=ACTUAL_COST * 2.2),  # two calls fit, a third cannot
            "ledger": settings.ledger.model_copy(update={"path": str(path)}),
        }
    )
    async with OpenAIClient(settings=settings) as client:
        await client.generate_text(MESSAGES, max_tokens=1)
        await client.generate_text(MESSAGES, max_tokens=1)
    client.accounting.ledger.close()

    # A new process: fresh shared state, same ledger file.
    from aiecs_llm.client import shared as accounting

    accounting.DEFAULTS = accounting._Defaults()
    async with OpenAIClient(settings=settings) as client:
        with pytest.raises(aiecs_llm.BudgetExceededError):
            await client.generate_text(MESSAGES, max_tokens=1)
    assert len(server.requests) == 2
    client.accounting.ledger.close()


def test_budget_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_DAILY_BUDGET", "5")
    monkeypatch.setenv("LLM_MONTHLY_BUDGET", "100")
    monkeypatch.setenv("LLM_BUDGET_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("LLM_USAGE_DB", str(tmp_path / "u.db"))
    settings = aiecs_llm.LLMSettings.load()
    assert (settings.budgets.daily, settings.budgets.monthly) == (5.0, 100.0)
    assert settings.budgets.timezone == "Europe/Berlin"
    assert settings.ledger.path == str(tmp_path / "u.db")
