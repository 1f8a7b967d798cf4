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


def _tool(index: int) -> dict[str, object]:
    return {
        "type": "function",
        "function": {
            "name": f"lookup_{index}",
            "description": "Look up one record of the inventory by its identifier. " * 8,
            "parameters": {
                "type": "object",
                "properties": {
                    name: {"type": "string", "description": f"The {name} of the record."}
                    for name in ("identifier", "warehouse", "region", "owner", "status")
                },
            },
        },
    }


def _output_schema() -> dict[str, object]:
    fields = {
        f"field_{index}": {"type": "string", "description": f"Line {index} of the invoice."}
        for index in range(60)
    }
    return {"name": "invoice", "schema": {"type": "object", "properties": fields}}


def _hold_without_extras() -> float:
    from aiecs_llm.accounting import pricing

    prompt = pricing.count_tokens("gpt-4o-mini", messages=[m.model_dump() for m in MESSAGES])
    worst = pricing.worst_case_cost(
        ["gpt-4o-mini"], prompt_tokens=prompt, max_tokens=100, overrides={}
    )
    assert worst is not None
    return worst


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [_tool(index) for index in range(10)]},
        {"response_format": {"type": "json_schema", "json_schema": _output_schema()}},
        {"n": 8},
    ],
    ids=["ten-tools", "output-schema", "n=8"],
)
async def test_the_hold_prices_the_whole_request_as_the_provider_bills_it(server, ledger, extra):
    # Issue 15: holds counted message text only, so 40 calls with ten tools spent 16x a daily
    # budget, a large output schema 18.9x and n=8 7.3x. The budget here holds the plain call
    # twice over, but not the same call with its schemas or its eight completions.
    limit = 2 * _hold_without_extras()
    budget = BudgetController([Budget("daily", limit)], ledger=ledger)
    async with OpenAIClient(
        settings=settings_for(server), ledger=ledger, budget=budget, monitor=LLMMonitor()
    ) as client:
        await client.generate_text(MESSAGES, max_tokens=100)  # the plain call fits
        sent = len(server.requests)
        with pytest.raises(aiecs_llm.BudgetExceededError):
            await client.generate_text(MESSAGES, max_tokens=100, **extra)
    assert len(server.requests) == sent  # refused before anything was sent


async def test_a_clients_default_tools_are_held_too(server, ledger):
    limit = 2 * _hold_without_extras()
    budget = BudgetController([Budget("daily", limit)], ledger=ledger)
    tools = [_tool(index) for index in range(10)]
    async with OpenAIClient(
        settings=settings_for(server), ledger=ledger, budget=budget, tools=tools
    ) as client:
        with pytest.raises(aiecs_llm.BudgetExceededError):
            await client.generate_text(MESSAGES, max_tokens=100)
    assert server.requests == []


async def test_a_model_nobody_can_price_is_refused_by_a_budget_before_sending(server, ledger):
    # Issue 15: LiteLLM prices a model missing from its map at $0, so budgets never refused it.
    budget = BudgetController([Budget("daily", 1.0)], ledger=ledger)
    async with OpenAIClient(settings=settings_for(server), ledger=ledger, budget=budget) as client:
        with pytest.raises(aiecs_llm.BudgetExceededError) as caught:
            await client.generate_text(MESSAGES, model="gpt-unpriced-test-model")
    assert caught.value.code == "unpriced_model"
    assert "allow_unpriced" in caught.value.message
    assert 'costs."openai/gpt-unpriced-test-model"' in caught.value.message
    assert server.requests == []


async def test_allow_unpriced_lets_such_a_call_through_and_its_cost_stays_unknown(server):
    settings = settings_for(server)
    settings = settings.model_copy(update={"budgets": Budgets(daily=1.0, allow_unpriced=True)})
    async with OpenAIClient(settings=settings, monitor=LLMMonitor()) as client:
        response = await client.generate_text(MESSAGES, model="gpt-unpriced-test-model")
    assert response.cost_estimate is None  # unknown, not $0
    assert len(server.requests) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_served_model_missing_from_the_map_is_priced_as_the_requested_one(server, stream):
    server.enqueue(Reply.ok(model="gpt-4o-mini-2099-12-31"))
    async with OpenAIClient(settings=settings_for(server), monitor=LLMMonitor()) as client:
        if stream:
            text_stream = client.stream_text(MESSAGES)
            async for _ in text_stream:
                pass
            response = text_stream.response
        else:
            response = await client.generate_text(MESSAGES)
    assert response.model == "gpt-4o-mini-2099-12-31"
    assert response.cost_estimate == pytest.approx(ACTUAL_COST)


def _budgeted_client(server, ledger, limit=1.0):
    budget = BudgetController([Budget("daily", limit)], ledger=ledger)
    client = OpenAIClient(
        settings=settings_for(server), ledger=ledger, budget=budget, monitor=LLMMonitor()
    )
    return client, budget


async def test_a_call_timed_out_after_the_provider_got_it_is_booked_at_its_hold(server, ledger):
    # Issue 15: calls the client timed out after the request reached the provider were booked
    # at $0 while the provider billed them (2.9x the limit in the reproduction).
    server.enqueue(Reply.hang())
    client, budget = _budgeted_client(server, ledger)
    async with client:
        with pytest.raises(aiecs_llm.RequestTimeoutError):
            await client.generate_text(MESSAGES, max_tokens=100, timeout=1, max_retries=0)
    (row,) = ledger.rows()
    assert row.cost_estimated
    assert row.cost == pytest.approx(_hold_without_extras())
    (status,) = budget.status()
    assert status.spent == pytest.approx(row.cost)
    assert status.reserved == 0


async def test_a_stream_cut_mid_answer_is_booked_at_its_hold(server, ledger):
    server.enqueue(Reply.cut_stream(after_chunks=2))
    client, budget = _budgeted_client(server, ledger)
    async with client:
        stream = client.stream_text(MESSAGES, max_tokens=100, max_retries=0)
        with pytest.raises(aiecs_llm.StreamInterruptedError):
            async for _ in stream:
                pass
    (row,) = ledger.rows()
    assert row.cost_estimated
    assert row.cost == pytest.approx(_hold_without_extras())
    assert budget.status()[0].spent == pytest.approx(row.cost)


async def test_an_error_answer_is_not_billed(server, ledger):
    server.enqueue(Reply.server_error())
    client, budget = _budgeted_client(server, ledger)
    async with client:
        with pytest.raises(aiecs_llm.ProviderNotAvailableError):
            await client.generate_text(MESSAGES, max_tokens=100, max_retries=0)
    (row,) = ledger.rows()
    assert not row.cost_estimated
    assert row.cost is None
    assert budget.status()[0].spent == 0
