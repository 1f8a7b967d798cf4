"""Scale-out, measured: 4 replica processes x 200 requests share one budget and one RPM limit
through a real redis-server, against the local OpenAI-format server.

The ledger is one SQLite file shared by the replicas (WAL mode, as on one host): one place to
count every request and to sum the spend, and the complete history a replica seeds a period's
budget from if Redis ever loses it. Replicas on several hosts would each keep their own file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from aiecs_llm.accounting.budget import Budget
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.config.settings import ProviderSettings
from aiecs_llm.redis.budget import RedisBudget
from aiecs_llm.redis.connection import RedisConnection
from aiecs_llm.redis.limits import SharedRateLimiter
from aiecs_llm.redis.state import rate_key
from aiecs_llm.resilience.limits import RateLimiter
from tests.conftest import ROOT
from tests.fake_provider import FakeProviderServer
from tests.redis_server import RedisServer

WORKERS = 4
REQUESTS = 200
CONCURRENCY = 8
RPM = 3000  # 50 requests/s: the ~550 requests the budget allows take about 11 s
BUDGET = 0.0045  # USD: room for ~550 of the 800 calls at $0.0000081 each (22 + 8 tokens)
KEY = "sk-test-openai-0000000000000000"


class TimedServer(FakeProviderServer):
    """The fake provider, noting when each request arrives: the rate the provider sees."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    async def _handle(self, request):  # type: ignore[no-untyped-def]
        self.arrivals.append(time.monotonic())
        return await super()._handle(request)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def start_workers(config: Path, logs: Path) -> list[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.update(LLM_CONFIG_FILE=str(config), OPENAI_API_KEY=KEY, LITELLM_LOCAL_MODEL_COST_MAP="True")
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests.redis_worker", str(REQUESTS), str(CONCURRENCY)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(logs / f"worker-{number}.log").open("w"),
            text=True,
        )
        for number in range(WORKERS)
    ]


async def test_replicas_share_one_budget_and_one_rate_limit(redis, tmp_path):
    ledger_path = tmp_path / "usage.db"
    config = tmp_path / "llm.toml"
    with TimedServer() as provider:
        config.write_text(
            f"""
[providers.openai]
base_url = "{provider.openai_base}"
requests_per_minute = {RPM}
[budgets]
daily = {BUDGET}
[ledger]
path = "{ledger_path}"
[state]
url = "{redis.url}"
"""
        )
        workers = start_workers(config, tmp_path)
        try:
            for worker in workers:
                assert worker.stdout is not None
                assert await asyncio.to_thread(worker.stdout.readline) == "ready\n"
            provider.arrivals.clear()  # the replicas' warm-up calls
            # The bucket starts full (a minute's requests at once, like the local limiter);
            # emptying it first makes every request of the run wait for the shared refill,
            # so the rate the provider sees is the limit itself.
            connection = RedisConnection(redis.url)
            key = rate_key(connection, "openai", ProviderSettings(api_key=SecretStr(KEY)))
            bucket = SharedRateLimiter(connection, key, RateLimiter(requests_per_minute=RPM))
            for _ in range(RPM // 25):  # in rounds the connection pool serves without queueing
                await asyncio.gather(*(bucket.acquire() for _ in range(25)))
            # What refilled while that ran, taken one by one until a caller has to wait.
            while (await bucket.acquire()).waited == 0:
                pass
            assert connection.available  # emptied in Redis, not in the local fallback
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            results = [
                await asyncio.to_thread(worker.communicate, timeout=180) for worker in workers
            ]
        finally:
            for worker in workers:
                worker.kill()
    assert [worker.returncode for worker in workers] == [0] * WORKERS
    outcomes: dict[str, int] = {}
    for stdout, _ in results:
        for name, count in json.loads(stdout.splitlines()[-1]).items():
            outcomes[name] = outcomes.get(name, 0) + count
    assert set(outcomes) == {"ok", "budget_exceeded"}
    assert sum(outcomes.values()) == WORKERS * REQUESTS
    assert outcomes["ok"] > 400

    # Every request accounted once: one ledger row each, and each success reached the
    # provider exactly once.
    ledger = UsageLedger(ledger_path)
    assert ledger.count() == WORKERS * REQUESTS
    rows = ledger.rows()
    assert len({row.id for row in rows}) == WORKERS * REQUESTS
    assert sum(row.outcome == "success" for row in rows) == outcomes["ok"]
    assert len(provider.arrivals) == outcomes["ok"]

    # Never above the budget, and Redis booked what the ledger recorded.
    spent = ledger.spend()
    ledger.close()
    (status,) = await RedisBudget([Budget("daily", BUDGET)], connection).status()
    assert spent <= BUDGET
    assert status.spent == pytest.approx(spent, rel=1e-9)
    assert status.reserved == pytest.approx(0.0, abs=1e-12)

    # The shared limit, as the provider saw it, after the first two seconds: the replicas' first
    # calls set up LiteLLM's HTTP path while their turns pass, and the bucket refills meanwhile,
    # so the first second carries a burst that says nothing about the steady rate.
    first = min(provider.arrivals)
    arrivals = sorted(at for at in provider.arrivals if at >= first + 2.0)
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) * 60
    print(
        f"\nscale: {outcomes}, spend ${spent:.7f} of ${BUDGET}, "
        f"rate {rate:.0f}/min for a limit of {RPM}/min over {arrivals[-1] - arrivals[0]:.1f}s"
    )
    assert abs(rate - RPM) / RPM < 0.05
