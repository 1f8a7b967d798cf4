"""batch_generate: input order, per-item errors, bounded concurrency, budget stop, progress,
cancellation."""

from __future__ import annotations

import asyncio

import pytest

from aiecs_llm import (
    AuthenticationError,
    BudgetExceededError,
    LLMMessage,
    LLMResponse,
    OpenAIClient,
    ProviderNotAvailableError,
)
from aiecs_llm.accounting.budget import Budget, BudgetController
from aiecs_llm.client.base import BaseLLMClient
from aiecs_llm.client.batch import BatchProgress, BatchRequest, BatchResult, batch_generate
from aiecs_llm.errors import ConfigurationError, LLMClientError
from tests.fake_provider import Reply
from tests.servers import settings_for


def requests(n: int, **fields) -> list[BatchRequest]:
    return [
        BatchRequest(id=f"item-{i}", messages=[LLMMessage("user", f"prompt {i}")], **fields)
        for i in range(n)
    ]


class EchoClient(BaseLLMClient):
    """Answers with the prompt; later items answer sooner, so completion order is reversed."""

    def __init__(self, total: int) -> None:
        super().__init__("echo")
        self.total = total
        self.calls: list[dict] = []

    async def generate_text(self, messages, model=None, temperature=0.7, max_tokens=None, **kw):
        self.calls.append(
            {"model": model, "temperature": temperature, "max_tokens": max_tokens, **kw}
        )
        text = messages[-1].content
        if text == "crash":
            raise ValueError("a bug")
        index = int(text.split()[-1])
        await asyncio.sleep(0.005 * (self.total - index))
        return LLMResponse(
            content=text.upper(), provider="echo", model="echo-1", prompt_tokens=3,
            completion_tokens=2, cost_estimate=0.5,
        )  # fmt: skip

    def stream_text(self, *args, **kwargs):
        raise NotImplementedError

    async def close(self) -> None:
        pass


class Instrumented(OpenAIClient):
    """The real client, counting calls in flight and calls cancelled."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0

    async def generate_text(self, *args, **kwargs):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await super().generate_text(*args, **kwargs)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


async def test_results_come_back_in_input_order():
    client = EchoClient(20)
    results = await batch_generate(client, requests(20), concurrency=20)
    assert [r.id for r in results] == [f"item-{i}" for i in range(20)]
    assert [r.response.content for r in results] == [f"PROMPT {i}" for i in range(20)]
    assert {r.status for r in results} == {"ok"}
    assert all(r.error is None for r in results)


async def test_item_fields_reach_the_client_and_defaults_stay_the_client_s():
    client = EchoClient(2)
    items = [
        BatchRequest("a", [LLMMessage("user", "p 0")], model="m1", temperature=0.2, max_tokens=9,
                     params={"top_p": 0.5}),
        BatchRequest("b", [LLMMessage("user", "p 1")]),
    ]  # fmt: skip
    await batch_generate(client, items, concurrency=1)
    assert client.calls == [
        {"model": "m1", "temperature": 0.2, "max_tokens": 9, "top_p": 0.5},
        {"model": None, "temperature": 0.7, "max_tokens": None},
    ]


async def test_a_crashing_item_is_an_error_result_with_its_cause():
    items = [*requests(2), BatchRequest("bad", [LLMMessage("user", "crash")])]
    results = await batch_generate(EchoClient(2), items)
    assert [r.status for r in results] == ["ok", "ok", "error"]
    assert type(results[2].error) is LLMClientError
    assert isinstance(results[2].error.__cause__, ValueError)


async def test_an_empty_batch_and_a_bad_concurrency():
    assert await batch_generate(EchoClient(0), []) == []
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigurationError):
            await batch_generate(EchoClient(1), requests(1), concurrency=bad)


async def test_per_item_errors_do_not_stop_the_batch(server):
    server.enqueue(Reply.ok("one"), Reply.invalid_api_key(), Reply.ok("three"),
                   Reply.server_error(), Reply.ok("five"))  # fmt: skip
    async with OpenAIClient(settings=settings_for(server), max_retries=0) as client:
        results = await batch_generate(client, requests(5), concurrency=1)
    assert [r.status for r in results] == ["ok", "error", "ok", "error", "ok"]
    assert [r.response.content for r in results if r.response] == ["one", "three", "five"]
    assert isinstance(results[1].error, AuthenticationError)
    assert isinstance(results[3].error, ProviderNotAvailableError)
    assert results[1].response is None


async def test_concurrency_is_bounded(server):
    server.default = Reply.ok(delay=0.1)
    async with Instrumented(settings=settings_for(server)) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await batch_generate(client, requests(16), concurrency=4)
        elapsed = loop.time() - started
    assert client.max_in_flight == 4
    assert len(server.requests) == 16
    assert elapsed >= 0.4 - 0.02  # four rounds of 0.1 s: never more than four at once
    assert {r.status for r in results} == {"ok"}


ACTUAL_COST = 22 * 0.15e-6 + 8 * 0.60e-6  # the fake server's default answer on gpt-4o-mini


async def test_a_budget_stop_leaves_the_rest_not_run(server):
    budget = BudgetController([Budget("daily", ACTUAL_COST * 3.5)])
    async with OpenAIClient(settings=settings_for(server), budget=budget) as client:
        results = await batch_generate(client, requests(10, max_tokens=1), concurrency=1)
    statuses = [r.status for r in results]
    answered = statuses.count("ok")
    assert 1 <= answered < 10
    assert statuses == ["ok"] * answered + ["not_run"] * (10 - answered)
    assert len(server.requests) == answered
    refused = results[answered]
    assert isinstance(refused.error, BudgetExceededError)
    assert all(r.error is None and r.response is None for r in results[answered + 1 :])


async def test_calls_in_flight_finish_after_a_budget_stop(server):
    server.default = Reply.ok(delay=0.05)
    budget = BudgetController([Budget("daily", ACTUAL_COST * 6.5)])
    async with Instrumented(settings=settings_for(server), budget=budget) as client:
        results = await batch_generate(client, requests(30, max_tokens=1), concurrency=4)
    ok = [r for r in results if r.status == "ok"]
    not_run = [r for r in results if r.status == "not_run"]
    assert ok
    assert not_run
    assert len(ok) + len(not_run) == 30
    assert len(server.requests) == len(ok)  # nothing refused was sent
    assert all(r.error is None or isinstance(r.error, BudgetExceededError) for r in not_run)
    # No item started after the first refusal: the refused ones are those already in flight.
    assert sum(isinstance(r.error, BudgetExceededError) for r in not_run) <= 4
    (status,) = budget.status()
    assert status.reserved == 0


async def test_progress_counts_every_item(server):
    server.enqueue(Reply.ok(), Reply.invalid_api_key())
    seen: list[BatchProgress] = []
    results_seen: list[tuple[int, BatchResult]] = []
    async with OpenAIClient(settings=settings_for(server), max_retries=0) as client:
        results = await batch_generate(
            client, requests(6), concurrency=2, progress=seen.append,
            on_result=lambda i, r: results_seen.append((i, r)),
        )  # fmt: skip
    assert [p.done for p in seen] == [1, 2, 3, 4, 5, 6]
    assert all(p.total == 6 for p in seen)
    final = seen[-1]
    assert (final.ok, final.errors, final.not_run) == (5, 1, 0)
    assert final.tokens == 5 * 30
    assert final.cost == pytest.approx(5 * ACTUAL_COST)
    assert sorted(i for i, _ in results_seen) == list(range(6))
    assert all(results[i] is r for i, r in results_seen)


async def test_progress_reports_items_left_unrun(server):
    seen: list[BatchProgress] = []
    budget = BudgetController([Budget("daily", ACTUAL_COST * 1.5)])
    async with OpenAIClient(settings=settings_for(server), budget=budget) as client:
        await batch_generate(client, requests(5, max_tokens=1), concurrency=1, progress=seen.append)
    assert seen[-1].done == 5
    assert seen[-1].not_run == 5 - seen[-1].ok


async def test_cancelling_the_batch_cancels_the_calls_in_flight(server):
    server.default = Reply.hang()
    async with Instrumented(settings=settings_for(server)) as client:
        task = asyncio.create_task(batch_generate(client, requests(10), concurrency=3))
        for _ in range(1500):  # until the three are in: at once, or 30 s on a stalled machine
            if len(server.requests) == 3:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.cancelled == 3
        assert client.in_flight == 0
    assert len(server.requests) == 3
