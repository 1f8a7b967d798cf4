"""The response cache inside the client: never pay twice, through the public API."""

import asyncio

import pytest

from aiecs_llm import LLMMessage, OpenAIClient
from aiecs_llm.accounting.cache import ResponseCache
from aiecs_llm.accounting.cache_store import MemoryCache, SQLiteCache
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from tests.fake_provider import Reply
from tests.servers import settings_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]


@pytest.fixture
def ledger():
    with UsageLedger() as ledger:
        yield ledger


async def test_a_deterministic_call_is_answered_once(server, ledger):
    monitor = LLMMonitor()
    async with OpenAIClient(
        settings=settings_for(server), ledger=ledger, monitor=monitor
    ) as client:
        first = await client.generate_text(MESSAGES, temperature=0)
        second = await client.generate_text(MESSAGES, temperature=0)
    assert len(server.requests) == 1
    assert first.cached is False
    assert second.cached is True
    assert second.content == first.content
    assert second.cost_estimate == 0.0
    assert second.original_cost == pytest.approx(first.cost_estimate)
    rows = ledger.rows()
    assert [row.cache_hit for row in rows] == [False, True]
    assert rows[1].cost == 0.0
    metrics = monitor.get_metrics()
    assert (metrics["cache_hits"], metrics["cache_misses"]) == (1, 1)


async def test_sampled_calls_are_not_cached_unless_forced(server):
    async with OpenAIClient(settings=settings_for(server)) as client:
        await client.generate_text(MESSAGES, temperature=0.7)
        await client.generate_text(MESSAGES, temperature=0.7)
        assert len(server.requests) == 2
        await client.generate_text(MESSAGES, temperature=0.7, cache="force")
        forced = await client.generate_text(MESSAGES, temperature=0.7, cache="force")
    assert forced.cached
    assert len(server.requests) == 3


async def test_bypass_neither_reads_nor_writes(server):
    async with OpenAIClient(settings=settings_for(server)) as client:
        await client.generate_text(MESSAGES, temperature=0)
        fresh = await client.generate_text(MESSAGES, temperature=0, cache="bypass")
    assert not fresh.cached
    assert len(server.requests) == 2


async def test_every_parameter_that_changes_the_answer_changes_the_key(server):
    async with OpenAIClient(settings=settings_for(server)) as client:
        await client.generate_text(MESSAGES, temperature=0)
        await client.generate_text(MESSAGES, temperature=0, max_tokens=10)
        await client.generate_text(MESSAGES, temperature=0, top_p=0.5)
        await client.generate_text(MESSAGES, temperature=0, model="gpt-4o")
        await client.generate_text([LLMMessage("user", "Something else")], temperature=0)
    assert len(server.requests) == 5


async def test_concurrent_identical_calls_share_one_request(server, ledger):
    server.default = Reply.ok("shared", delay=0.2)
    async with OpenAIClient(settings=settings_for(server), ledger=ledger) as client:
        answers = await asyncio.gather(
            *(client.generate_text(MESSAGES, temperature=0) for _ in range(20))
        )
    assert len(server.requests) == 1
    assert {answer.content for answer in answers} == {"shared"}
    assert sum(answer.cached for answer in answers) == 19
    assert ledger.count() == 20


async def test_a_cached_stream_is_replayed_as_chunks(server):
    server.enqueue(Reply.ok("one two three", chunks=3))
    async with OpenAIClient(settings=settings_for(server)) as client:
        first = client.stream_text(MESSAGES, temperature=0)
        first_chunks = [chunk async for chunk in first]
        again = client.stream_text(MESSAGES, temperature=0)
        again_chunks = [chunk async for chunk in again]
    assert len(server.requests) == 1
    assert again_chunks == first_chunks
    assert len(again_chunks) == 3
    assert again.response.cached


async def test_a_failed_call_is_not_cached(server):
    server.enqueue(Reply.invalid_api_key())
    async with OpenAIClient(settings=settings_for(server), max_retries=0) as client:
        with pytest.raises(Exception, match="key"):
            await client.generate_text(MESSAGES, temperature=0)
        answer = await client.generate_text(MESSAGES, temperature=0)
    assert not answer.cached
    assert len(server.requests) == 2


async def test_a_persistent_cache_survives_a_new_client(server, tmp_path):
    path = tmp_path / "cache.db"
    async with OpenAIClient(
        settings=settings_for(server), cache=ResponseCache(SQLiteCache(path))
    ) as client:
        await client.generate_text(MESSAGES, temperature=0)
    async with OpenAIClient(
        settings=settings_for(server), cache=ResponseCache(SQLiteCache(path))
    ) as client:
        answer = await client.generate_text(MESSAGES, temperature=0)
    assert answer.cached
    assert len(server.requests) == 1


async def test_the_cache_can_be_switched_off(server):
    settings = settings_for(server)
    settings = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"enabled": False})}
    )
    async with OpenAIClient(settings=settings) as client:
        await client.generate_text(MESSAGES, temperature=0)
        await client.generate_text(MESSAGES, temperature=0)
    assert len(server.requests) == 2


async def test_an_explicit_memory_cache_with_its_own_limits(server):
    cache = ResponseCache(MemoryCache(max_entries=1), ttl=60)
    async with OpenAIClient(settings=settings_for(server), cache=cache) as client:
        await client.generate_text(MESSAGES, temperature=0)
        await client.generate_text([LLMMessage("user", "other")], temperature=0)  # evicts
        await client.generate_text(MESSAGES, temperature=0)
    assert len(server.requests) == 3
