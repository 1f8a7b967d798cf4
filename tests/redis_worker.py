"""One replica for tests/redis/test_redis_scale.py:
``python -m tests.redis_worker REQUESTS CONCURRENCY``.

Configured by the file in ``LLM_CONFIG_FILE`` (state URL, budget, ledger, rate limit). Prints
``ready`` once LiteLLM is imported, waits for a line on stdin, sends its requests, waits until
its budget settlements are in Redis and its ledger is on disk, and prints its outcomes as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import Counter

import structlog

from aiecs_llm import BudgetExceededError, LiteLLMClient, LLMClientError, LLMMessage
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.redis.budget import RedisBudget


async def main(requests: int, concurrency: int) -> None:
    client = LiteLLMClient("openai/gpt-4o-mini")
    # LiteLLM imported and its HTTP path set up now, not on the clock: one call straight to the
    # provider, outside the client (no budget, no rate limit, no ledger row).
    provider = client.settings.provider("openai")
    assert provider.api_key is not None
    await _litellm.litellm().acompletion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "warm-up"}],
        api_base=provider.base_url,
        api_key=provider.api_key.get_secret_value(),
    )
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    outcomes: Counter[str] = Counter()
    numbers = iter(range(requests))

    async def caller() -> None:
        for number in numbers:
            question = [LLMMessage(role="user", content=f"question {number}")]
            try:
                await client.generate_text(question, max_tokens=16, cache="bypass")
                outcomes["ok"] += 1
            except BudgetExceededError as error:
                outcomes[error.code or "budget"] += 1
            except LLMClientError as error:
                outcomes[type(error).__name__] += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    budget = client.accounting.budget
    assert isinstance(budget, RedisBudget)
    await budget.flush()
    assert client.accounting.ledger is not None
    client.accounting.ledger.close()
    await client.close()
    print(json.dumps(dict(outcomes)), flush=True)


if __name__ == "__main__":
    # The application's choice, not the library's: warnings and errors to stderr, stdout clean.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
