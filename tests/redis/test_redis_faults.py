"""Redis killed mid-run and restarted under a client making calls: budgets fail closed (or
open, when configured), nothing spins or crashes, every call is accounted, and the client goes
back to the shared state by itself."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from aiecs_llm.client.litellm_client import LiteLLMClient
from aiecs_llm.config.settings import Budgets, Ledger, LLMSettings, ProviderSettings, StateSettings
from aiecs_llm.errors import BudgetExceededError
from aiecs_llm.redis.budget import RedisBudget
from aiecs_llm.redis.state import RedisState
from aiecs_llm.types import LLMMessage
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow

KILL_AT, DOWN_FOR, AFTER = 1.5, 2.0, 1.0  # seconds


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
async def test_redis_killed_mid_run_and_restarted(server, tmp_path, fail_open):
    with RedisServer(durable=True) as redis:  # AOF: the books survive the kill, as they should
        settings = LLMSettings(
            providers={
                "openai": ProviderSettings(
                    api_key=SecretStr("sk-test-openai-0000000000000000"),
                    base_url=server.openai_base,
                    requests_per_minute=6000,
                )
            },
            budgets=Budgets(daily=1.0),
            ledger=Ledger(path=str(tmp_path / "usage.db")),
            # A generous socket timeout: a killed server is noticed at once (its connections
            # close); a slow answer on a loaded machine must not look like an outage.
            state=StateSettings(
                url=SecretStr(redis.url + "?socket_timeout=30"), budget_fail_open=fail_open
            ),
        )
        client = LiteLLMClient("openai/gpt-4o-mini", settings=settings)
        budget = client.accounting.budget
        assert isinstance(budget, RedisBudget)
        question = [LLMMessage(role="user", content="hello")]
        await client.generate_text(question, max_tokens=16)  # LiteLLM loaded before the clock
        outcomes: list[tuple[float, str]] = [(0.0, "ok")]
        times: dict[str, float] = {}
        done = asyncio.Event()
        start = time.monotonic()

        async def caller() -> None:
            while not done.is_set():
                try:
                    await client.generate_text(question, max_tokens=16, cache="bypass")
                    outcomes.append((time.monotonic() - start, "ok"))
                except BudgetExceededError as refused:
                    outcomes.append((time.monotonic() - start, refused.code or ""))
                    await asyncio.sleep(0.01)  # as a caller would back off a refusal

        async def chaos() -> None:
            await asyncio.sleep(KILL_AT)
            redis.kill()
            times["killed"] = time.monotonic() - start
            await asyncio.sleep(DOWN_FOR)
            await asyncio.to_thread(redis.start)
            times["restarted"] = time.monotonic() - start
            async with asyncio.timeout(15):
                while not budget.connection.available:  # noqa: ASYNC110 - polled state
                    await asyncio.sleep(0.01)
            times["recovered"] = time.monotonic() - start
            await asyncio.sleep(AFTER)
            done.set()

        with capture_logs() as logs:
            await asyncio.gather(chaos(), *(caller() for _ in range(8)))
            await asyncio.wait_for(budget.flush(), timeout=15)
        assert isinstance(client._state, RedisState)
        await client._state.aclose()

        recovery = times["recovered"] - times["restarted"]
        kinds = {kind for _, kind in outcomes}
        before = [kind for at, kind in outcomes if at < times["killed"] - 0.1]
        after = [kind for at, kind in outcomes if at > times["recovered"] + 0.1]
        refused = [at for at, kind in outcomes if kind == "budget_unavailable"]
        print(
            f"\nfaults ({'open' if fail_open else 'closed'}): {len(outcomes)} calls, "
            f"{len(refused)} refused while Redis was down, recovery {recovery:.2f}s after restart"
        )
        assert set(before) == {"ok"}
        assert after
        assert set(after) == {"ok"}
        # The longest rest between two tries is 5 s; then one call must get through.
        assert recovery < 10.0
        if fail_open:
            assert kinds == {"ok"}
            assert any(e["event"] == "llm.budget.fail_open" for e in logs)
        else:
            assert kinds == {"ok", "budget_unavailable"}
            assert times["killed"] - 0.1 <= min(refused)
            assert max(refused) <= times["recovered"] + 0.1
        events = [e["event"] for e in logs]
        outages = [e for e in logs if e["event"] == "llm.state.unavailable"]
        assert len(outages) == 1, outages  # once per outage, not per call
        assert events.count("llm.state.recovered") == 1

        # Every call accounted once, and Redis booked (on recovery, for the calls in flight
        # or let through meanwhile) exactly what the ledger recorded.
        ledger = client.accounting.ledger
        assert ledger is not None
        ledger.flush()
        assert ledger.count() == len(outcomes)
        (status,) = await budget.status()
        assert status.spent == pytest.approx(ledger.spend(), rel=1e-9)
        assert status.reserved == pytest.approx(0.0, abs=1e-12)
        await client.close()
