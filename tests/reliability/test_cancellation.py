"""Cancellation and shutdown: calls and streams cancelled at random points, streams closed
mid-way, and the client closed while calls are in flight. Every concurrency slot, rate-limiter
place and budget reservation must come back, the ledger must hold one row per call started,
and no task may be left behind.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

import aiecs_llm
from aiecs_llm import LiteLLMClient, LLMMessage
from aiecs_llm.accounting.budget import Budget, BudgetController
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.resilience import retry, state
from tests.fake_provider import Reply
from tests.reliability.chaos_server import ChaosServer
from tests.reliability.test_load import established_connections, settle
from tests.servers import MODELS, base_url, settings_for

# A call cancelled while LiteLLM prepares it in its thread pool leaves LiteLLM's own provider
# coroutine unawaited; Python says so when it is collected. Nothing of ours is left behind.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
MESSAGES = [LLMMessage("user", "Say hello in five words.")]
CHAINS = {
    "openai/gpt-4o-mini": ["anthropic/claude-haiku-4-5"],
    "anthropic/claude-haiku-4-5": ["gemini/gemini-2.5-flash"],
    "gemini/gemini-2.5-flash": ["openai/gpt-4o-mini"],
}
LIMITS = {"max_concurrency": 5, "requests_per_minute": 100_000, "tokens_per_minute": 10**7}
SEED = 1234
IDLE = 2.0  # seconds a started stream may stay silent
CLOSE_IDLE = 30.0  # the same, where close() must end the streams long before it runs out


@dataclass
class Op:
    """One call of the run and what became of it."""

    kind: str  # "call", "stream" (task cancelled) or "aclose" (stream closed mid-way)
    model: str
    cancel_after: float | None
    chunks_before_aclose: int
    started: bool = False
    finished: bool = False  # answered or failed before any cancellation reached it
    cancelled: bool = False  # stopped by task.cancel() or aclose() while running
    refused_closed: bool = False  # the client was closed before the call began
    error: str | None = None


def _plan(rng: random.Random, count: int) -> list[Op]:
    return [
        Op(
            kind=rng.choice(["call", "call", "stream", "aclose"]),
            model=rng.choice(list(CHAINS)),
            cancel_after=rng.choice([None, rng.uniform(0, 0.6)]),
            chunks_before_aclose=rng.randint(0, 5),
        )
        for _ in range(count)
    ]


async def _run(client: LiteLLMClient, op: Op) -> None:
    tags = {"team": "capped"} if op.model.startswith("openai") else {}
    try:
        if op.kind == "call":
            op.started = True  # nothing can interrupt between here and the call's first line
            await client.generate_text(MESSAGES, model=op.model, max_tokens=16, tags=tags)
        else:
            stream = client.stream_text(MESSAGES, model=op.model, max_tokens=16, tags=tags)
            read = 0
            while op.kind == "stream" or read < op.chunks_before_aclose:
                op.started = True  # the stream's call begins with its first anext()
                try:
                    await anext(stream)
                except StopAsyncIteration:
                    break
                read += 1
            else:
                await stream.aclose()
                op.cancelled = op.started  # stopped mid-way (a stream never read sends nothing)
                return
        op.finished = True
    except asyncio.CancelledError:
        op.cancelled = True
        raise
    except aiecs_llm.ConfigurationError as error:
        if error.code != "client_closed":
            raise
        if "is closed" in error.message:  # refused at once: nothing began, nothing recorded
            op.started, op.refused_closed = False, True
        else:  # ended by close() while it ran: recorded as an error
            op.error, op.finished = type(error).__name__, True
    except aiecs_llm.LLMClientError as error:
        op.error = type(error).__name__
        op.finished = True


def _client(server: ChaosServer, **options: Any) -> LiteLLMClient:
    settings = settings_for(
        server,
        fallbacks=CHAINS,
        provider_limits={name: LIMITS for name in ("openai", "anthropic", "google")},
        max_concurrency=8,
        # A started stream that goes silent ends after this (close() ends them at once: see
        # test_close_ends_streams_in_flight_at_once below).
        stream_idle_timeout=IDLE,
    )
    return LiteLLMClient(settings=settings, max_retries=2, timeout=5, **options)


def _limits(client: LiteLLMClient) -> list[Any]:
    """Every concurrency limit and rate limiter a call of this client can hold."""
    found: list[Any] = list(client._targets.concurrency_limits())
    for model in CHAINS:
        limits = client._targets.target(model).limits
        found += [limits.provider_concurrency, limits.rate]
    return [limit for limit in found if limit is not None]


async def _check_everything_released(
    client: LiteLLMClient,
    budget: BudgetController,
    ledger: UsageLedger,
    ops: list[Op],
    tasks_before: set[asyncio.Task[Any]],
) -> Counter[str]:
    for limit in _limits(client):
        assert limit.waiting == 0, limit
        if hasattr(limit, "in_use"):
            assert limit.in_use == 0, limit
    for status in budget.status():
        assert status.reserved == 0, status
        assert status.spent <= status.limit
    started = [op for op in ops if op.started]
    assert "LLMClientError" not in {op.error for op in ops}  # every failure is classified
    rows = ledger.rows()
    assert len(rows) == len(started), "a started call is missing from the ledger, or extra"
    outcomes = Counter(row.outcome for row in rows)
    assert outcomes["cancelled"] == sum(op.cancelled for op in started)
    assert outcomes["error"] == sum(op.error is not None for op in started)
    current = asyncio.current_task()
    assert await settle(lambda: asyncio.all_tasks() - tasks_before - {current}) == set()
    return outcomes


async def _warm_up(server: ChaosServer) -> set[asyncio.Task[Any]]:
    async with _client(server, ledger=UsageLedger(), monitor=LLMMonitor()) as client:
        for model in CHAINS:
            await client.generate_text(MESSAGES, model=model)
    await asyncio.sleep(0.1)
    return asyncio.all_tasks()


def _budget() -> BudgetController:
    return BudgetController([Budget("daily", 10.0), Budget("daily", 0.002, {"team": "capped"})])


async def test_cancelling_calls_and_streams_at_random_points_releases_everything(
    figures, monkeypatch
):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.02)
    rng = random.Random(SEED)
    server = ChaosServer(
        fault_rate=0.15,
        seed=SEED,
        default=Reply.ok("a b c d e f g h", chunks=8, delay=0.05, chunk_delay=0.03),
    )
    async with server:
        tasks_before = await _warm_up(server)
        budget, ledger = _budget(), UsageLedger()
        ops = _plan(rng, 160)
        async with _client(server, budget=budget, ledger=ledger, monitor=LLMMonitor()) as client:
            tasks = []
            for op in ops:
                task = asyncio.create_task(_run(client, op))
                if op.cancel_after is not None:
                    asyncio.get_running_loop().call_later(op.cancel_after, task.cancel)
                tasks.append(task)
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)
            await asyncio.sleep(0.7)  # the last cancel timers fire on finished tasks
            outcomes = await _check_everything_released(client, budget, ledger, ops, tasks_before)
    assert outcomes["cancelled"] >= 20, outcomes  # the random points did land mid-call
    assert sum(op.kind == "aclose" and op.cancelled for op in ops) >= 5
    figures.requests += len(ops)
    figures.records_lost += sum(op.started for op in ops) - sum(outcomes.values())
    figures.section(
        "cancellation",
        calls=len(ops),
        started=sum(op.started for op in ops),
        cancelled=outcomes["cancelled"],
        answered=outcomes["success"],
        failed=outcomes["error"],
    )


async def test_closing_the_client_with_calls_in_flight_releases_everything(figures, monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.02)
    rng = random.Random(SEED + 1)
    server = ChaosServer(
        fault_rate=0.1,
        seed=SEED,
        default=Reply.ok("a b c d e f g h", chunks=8, delay=0.1, chunk_delay=0.03),
    )
    closed_under = Counter[str]()
    async with server:
        tasks_before = await _warm_up(server)
        for round_ in range(3):
            budget, ledger = _budget(), UsageLedger()
            ops = _plan(rng, 60)
            client = _client(
                server,
                budget=budget,
                ledger=ledger,
                monitor=LLMMonitor(),
                state=state.InProcessState(),
            )
            tasks = []
            for op in ops:
                op.cancel_after = None
                tasks.append(asyncio.create_task(_run(client, op)))
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            await client.close()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)
            outcomes = await _check_everything_released(client, budget, ledger, ops, tasks_before)
            closed_under[f"round {round_}"] = sum(op.started for op in ops)
            figures.requests += len(ops)
            figures.records_lost += sum(op.started for op in ops) - sum(outcomes.values())
    figures.section("shutdown", rounds=3, calls_started_before_close=sum(closed_under.values()))


async def _close_mid_flight(
    server: ChaosServer, provider: str, *, calls: int, max_concurrency: int | None
) -> tuple[aiecs_llm.LiteLLMClient, list[Any]]:
    settings = settings_for(server, max_concurrency=max_concurrency)
    client = aiecs_llm.PROVIDERS[provider](
        api_key="sk-test-close-000000000000",
        base_url=base_url(server, provider),
        model=MODELS[provider],
        settings=settings,
        max_retries=0,
        ledger=UsageLedger(),
        monitor=LLMMonitor(),
    )
    await client.generate_text(MESSAGES)  # connections open, LiteLLM loaded
    server.default = Reply.ok(delay=0.4)
    tasks = [asyncio.create_task(client.generate_text(MESSAGES)) for _ in range(calls)]
    await asyncio.sleep(0.15)
    await client.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return client, results


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
async def test_close_leaves_no_http_client_or_connection_open(figures, provider):
    async with ChaosServer() as server:
        client, results = await _close_mid_flight(server, provider, calls=8, max_concurrency=2)
        figures.requests += len(results) + 1
        await asyncio.sleep(0.2)
        assert client._targets.open_http_clients() == []
        assert await settle(lambda: established_connections(server.port)) == 0


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
async def test_closing_one_client_does_not_break_the_route_for_others(figures, provider):
    async with ChaosServer() as server:
        _, results = await _close_mid_flight(server, provider, calls=6, max_concurrency=None)
        figures.requests += len(results) + 2
        server.default = Reply.ok()
        async with aiecs_llm.PROVIDERS[provider](
            api_key="sk-test-close-000000000000",
            base_url=base_url(server, provider),
            model=MODELS[provider],
            max_retries=0,
        ) as other:
            response = await other.generate_text(MESSAGES)  # the provider is fine
        assert response.content
        ended = [result for result in results if isinstance(result, BaseException)]
        assert ended, "close() came after every call had finished: the test proves nothing"
        for result in ended:
            # The client's own doing, not the provider's: no status, so no breaker count.
            assert isinstance(result, aiecs_llm.ConfigurationError), repr(result)
            assert (result.code, result.status_code) == ("client_closed", None)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
async def test_close_ends_streams_in_flight_at_once(figures, provider):
    errors: list[aiecs_llm.LLMClientError] = []

    async def read(stream: Any) -> float:
        try:
            async for _ in stream:
                pass
        except aiecs_llm.LLMClientError as error:
            errors.append(error)
        return time.monotonic()

    rng = random.Random(SEED)
    default = Reply.ok("a b c d e f g h", chunks=8, delay=0.1, chunk_delay=0.03)
    async with ChaosServer(default=default) as server:
        for _ in range(5):  # the hang is a race; five tries make it all but certain
            settings = settings_for(server, stream_idle_timeout=CLOSE_IDLE)
            client = aiecs_llm.PROVIDERS[provider](
                api_key="sk-test-close-000000000000",
                base_url=base_url(server, provider),
                model=MODELS[provider],
                settings=settings,
                state=state.InProcessState(),
            )
            await client.generate_text(MESSAGES)
            tasks = [asyncio.create_task(read(client.stream_text(MESSAGES))) for _ in range(20)]
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            await client.close()
            closed = time.monotonic()
            ended = await asyncio.gather(*tasks)
            figures.requests += len(tasks) + 1
            # At once: a few milliseconds; the bound leaves a busy machine room.
            assert max(ended) - closed < CLOSE_IDLE / 2, (
                "a stream outlived close() until its idle timeout"
            )
    assert errors, "close() came after every stream had ended: the test proves nothing"
    for error in errors:  # ended by close(), saying so, and nothing the breaker would count
        assert error.status_code is None, repr(error)
        assert error.code == "client_closed" or "was closed" in error.message, repr(error)
