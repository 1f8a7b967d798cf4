"""The response cache: keys, backends (TTL, LRU, persistence), policy and coalescing."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

from aiecs_llm import LLMMessage, LLMResponse, OpenAIClient
from aiecs_llm.accounting.cache import ResponseCache, cache_key, mark_cached
from aiecs_llm.accounting.cache_store import CachedResponse, MemoryCache, SQLiteCache
from aiecs_llm.errors import AuthenticationError, ConfigurationError
from tests.fake_provider import Reply
from tests.servers import settings_for

HAS_CACHE_FIELDS = {"cached", "original_cost"} <= set(LLMResponse.model_fields)
needs_cache_fields = pytest.mark.skipif(
    not HAS_CACHE_FIELDS, reason="LLMResponse.cached not added yet"
)

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a prime."},
]
PARAMS = {
    "temperature": 0,
    "max_tokens": 100,
    "top_p": 1.0,
    "stop": ["\n"],
    "seed": 7,
    "response_format": {"type": "json_object"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "tool_choice": "auto",
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "n": 1,
    "logit_bias": {"50256": -100},
    "user": "u-1",
    "reasoning_effort": "low",
}
# For each parameter, a value that asks for a different answer.
CHANGED = {
    "temperature": 0.5,
    "max_tokens": 101,
    "top_p": 0.9,
    "stop": ["\n\n"],
    "seed": 8,
    "response_format": {"type": "text"},
    "tools": [{"type": "function", "function": {"name": "g", "parameters": {}}}],
    "tool_choice": "none",
    "frequency_penalty": 0.1,
    "presence_penalty": 0.1,
    "n": 2,
    "logit_bias": {"50256": 100},
    "user": "u-2",
    "reasoning_effort": "high",
}


def key(**changes):
    values = {"provider": "openai", "model": "gpt-4o-mini", "messages": MESSAGES, "params": PARAMS}
    values.update(changes)
    return cache_key(**values)


def response(content="4", cost=0.002) -> LLMResponse:
    return LLMResponse(
        content=content,
        provider="openai",
        model="gpt-4o-mini-2024-07-18",
        prompt_tokens=10,
        completion_tokens=2,
        cost_estimate=cost,
    )


def entry(content="4") -> CachedResponse:
    return CachedResponse(response(content))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- keys -----------------------------------------------------------------------------------


def test_key_is_a_sha256_hex_digest_without_the_prompt():
    digest = key()
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert "prime" not in digest
    assert key() == digest


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_every_parameter_changes_the_key(name):
    assert set(CHANGED) == set(PARAMS)
    assert key(params={**PARAMS, name: CHANGED[name]}) != key()


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_adding_or_removing_a_parameter_changes_the_key(name):
    without = {k: v for k, v in PARAMS.items() if k != name}
    assert key(params=without) != key()


def test_an_unknown_parameter_counts_too():
    assert key(params={**PARAMS, "some_new_param": 1}) != key()


def test_provider_and_model_change_the_key():
    assert key(provider="azure") != key()
    assert key(model="gpt-4o") != key()


def test_message_content_role_and_order_change_the_key():
    reordered = list(reversed(MESSAGES))
    other_role = [MESSAGES[0], {"role": "assistant", "content": "Name a prime."}]
    other_text = [MESSAGES[0], {"role": "user", "content": "Name a prime!"}]
    extra = [*MESSAGES, {"role": "user", "content": "Another."}]
    keys = {key(messages=m) for m in (MESSAGES, reordered, other_role, other_text, extra)}
    assert len(keys) == 5


def test_the_boundary_between_messages_matters():
    one = [{"role": "user", "content": "ab"}, {"role": "user", "content": "c"}]
    two = [{"role": "user", "content": "a"}, {"role": "user", "content": "bc"}]
    assert key(messages=one) != key(messages=two)


def test_parameter_and_mapping_order_do_not_matter():
    reversed_params = dict(reversed(list(PARAMS.items())))
    reversed_params["response_format"] = {"type": "json_object"}
    assert key(params=reversed_params) == key()
    schema = {"type": "json_schema", "json_schema": {"name": "n", "strict": True}}
    flipped = {"json_schema": {"strict": True, "name": "n"}, "type": "json_schema"}
    assert key(params={"response_format": schema}) == key(params={"response_format": flipped})
    message = [{"content": "Name a prime.", "role": "user"}]
    assert key(messages=message) == key(messages=[{"role": "user", "content": "Name a prime."}])


def test_equivalent_values_share_a_key():
    assert key(params={**PARAMS, "temperature": 0.0}) == key(params={**PARAMS, "temperature": 0})
    assert key(params={**PARAMS, "stop": ("\n",)}) == key()
    assert key(params={**PARAMS, "top_p": None}) == key(
        params={k: v for k, v in PARAMS.items() if k != "top_p"}
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("api_key", "sk-other"), ("timeout", 5), ("stream", True), ("max_retries", 0)],
)
def test_how_a_call_is_sent_does_not_change_the_key(name, value):
    assert key(params={**PARAMS, name: value}) == key()


def test_structured_output_classes_key_by_their_schema():
    class Answer(BaseModel):
        value: int

    class Other(BaseModel):
        text: str

    assert key(params={"response_format": Answer}) == key(params={"response_format": Answer})
    assert key(params={"response_format": Answer}) != key(params={"response_format": Other})


def test_a_value_without_a_stable_form_is_refused():
    with pytest.raises(ConfigurationError, match="response_format"):
        key(params={"response_format": object()})


# -- marking --------------------------------------------------------------------------------


@needs_cache_fields
def test_mark_cached_zeroes_the_cost_and_keeps_the_original():
    marked = mark_cached(response(cost=0.002))
    assert marked.cost_estimate == 0.0
    assert marked.cached is True
    assert marked.original_cost == 0.002
    assert marked.content == "4"
    assert marked.prompt_tokens == 10
    again = mark_cached(marked)
    assert again.original_cost == 0.002


# -- memory backend -------------------------------------------------------------------------


async def test_memory_entries_expire_after_their_ttl():
    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.set("a", entry("A"), ttl=10)
    await cache.set("b", entry("B"), ttl=None)
    clock.now += 9.9
    assert (await cache.get("a")).response.content == "A"
    clock.now += 0.1
    assert await cache.get("a") is None
    assert len(cache) == 1
    clock.now += 1e9
    assert (await cache.get("b")).response.content == "B"


async def test_memory_evicts_the_least_recently_used():
    cache = MemoryCache(max_entries=3)
    for name in "abc":
        await cache.set(name, entry(name), ttl=None)
    await cache.get("a")  # now b is the least recently used
    await cache.set("d", entry("d"), ttl=None)
    assert await cache.get("b") is None
    await cache.set("c", entry("c2"), ttl=None)  # overwriting counts as a use
    await cache.set("e", entry("e"), ttl=None)
    assert await cache.get("a") is None
    assert [(await cache.get(n)).response.content for n in "cde"] == ["c2", "d", "e"]
    await cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_max_entries_must_be_a_positive_whole_number(bad, tmp_path):
    with pytest.raises(ConfigurationError):
        MemoryCache(max_entries=bad)
    with pytest.raises(ConfigurationError):
        SQLiteCache(tmp_path / "c.db", max_entries=bad)


# -- SQLite backend -------------------------------------------------------------------------


async def test_sqlite_survives_reopening(tmp_path):
    path = tmp_path / "sub" / "cache.db"
    first = SQLiteCache(path)
    await first.set("k", CachedResponse(response("4"), chunks=("4",), stored_at=5.0), ttl=60)
    first.close()
    second = SQLiteCache(path)
    got = await second.get("k")
    second.close()
    assert got == CachedResponse(response("4"), chunks=("4",), stored_at=5.0)


async def test_sqlite_entries_expire_across_reopening(tmp_path):
    clock = Clock(1_700_000_000.0)
    path = tmp_path / "cache.db"
    cache = SQLiteCache(path, clock=clock)
    await cache.set("short", entry("s"), ttl=10)
    await cache.set("forever", entry("f"), ttl=None)
    cache.close()
    clock.now += 11
    reopened = SQLiteCache(path, clock=clock)
    assert await reopened.get("short") is None
    assert (await reopened.get("forever")).response.content == "f"
    assert len(reopened) == 1
    await reopened.clear()
    assert len(reopened) == 0
    reopened.close()


async def test_sqlite_evicts_the_least_recently_used_even_after_reopening(tmp_path):
    path = tmp_path / "cache.db"
    cache = SQLiteCache(path, max_entries=3)
    for name in "abc":
        await cache.set(name, entry(name), ttl=None)
    await cache.get("a")
    cache.close()
    cache = SQLiteCache(path, max_entries=3)
    await cache.set("d", entry("d"), ttl=None)
    assert await cache.get("b") is None
    assert len(cache) == 3
    await cache.set("e", entry("e"), ttl=None)
    assert await cache.get("c") is None
    assert [(await cache.get(n)).response.content for n in "ade"] == ["a", "d", "e"]
    cache.close()


async def test_sqlite_drops_an_unreadable_entry(tmp_path):
    cache = SQLiteCache(tmp_path / "cache.db")
    await cache.set("k", entry(), ttl=None)
    cache._db.execute("UPDATE responses SET value = ?", (json.dumps({"response": {}}),))
    assert await cache.get("k") is None
    assert len(cache) == 0
    cache.close()


async def test_a_sqlite_cache_behind_response_cache(tmp_path):
    cache = ResponseCache(SQLiteCache(tmp_path / "cache.db"))
    calls = 0

    async def call():
        nonlocal calls
        calls += 1
        return response("4")

    first, hit_first = await cache.get_or_call("k", call, temperature=0)
    second, hit_second = await cache.get_or_call("k", call, temperature=0)
    assert (hit_first, hit_second, calls) == (False, True, 1)
    assert second.content == first.content


# -- policy ---------------------------------------------------------------------------------


def test_only_deterministic_calls_are_cached_by_default():
    cache = ResponseCache()
    assert cache.should_cache(0, "auto")
    assert cache.should_cache(0.0, "auto")
    assert not cache.should_cache(0.7, "auto")
    assert not cache.should_cache(None, "auto")  # the client's default temperature is 0.7
    assert cache.should_cache(0.7, "force")
    assert not cache.should_cache(0, "bypass")
    assert ResponseCache(deterministic_only=False).should_cache(0.7, "auto")
    with pytest.raises(ConfigurationError):
        cache.should_cache(0, "sometimes")


@pytest.mark.parametrize("ttl", [0, -1])
def test_ttl_must_be_positive(ttl):
    with pytest.raises(ConfigurationError):
        ResponseCache(ttl=ttl)


class Counting:
    def __init__(self, content="4", *, delay=0.0, error=None):
        self.calls = 0
        self.content = content
        self.delay = delay
        self.error = error
        self.cancelled = 0

    async def __call__(self) -> LLMResponse:
        self.calls += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return response(self.content)


@needs_cache_fields
async def test_a_hit_costs_nothing_and_keeps_the_original_cost():
    cache = ResponseCache()
    call = Counting()
    first, hit = await cache.get_or_call("k", call, temperature=0)
    assert (hit, first.cached, first.cost_estimate) == (False, False, 0.002)
    again, hit = await cache.get_or_call("k", call, temperature=0)
    assert (hit, again.cached, again.cost_estimate, again.original_cost) == (True, True, 0.0, 0.002)
    assert call.calls == 1
    assert (cache.hits, cache.misses) == (1, 1)


async def test_uncacheable_calls_neither_read_nor_write():
    cache = ResponseCache()
    await cache.put("k", response("stored"))
    call = Counting("fresh")
    for temperature, mode in ((0, "bypass"), (0.7, "auto"), (None, "auto")):
        answer, hit = await cache.get_or_call("k", call, mode=mode, temperature=temperature)
        assert (answer.content, hit) == ("fresh", False)
    assert call.calls == 3
    assert (await cache.get("k")).response.content == "stored"
    forced, hit = await cache.get_or_call("k", call, mode="force", temperature=0.9)
    assert (forced.content, hit) == ("stored", True)


async def test_entries_expire_after_the_cache_ttl():
    clock = Clock()
    cache = ResponseCache(MemoryCache(clock=clock), ttl=60)
    call = Counting()
    await cache.get_or_call("k", call, temperature=0)
    clock.now += 61
    _, hit = await cache.get_or_call("k", call, temperature=0)
    assert (hit, call.calls) == (False, 2)


async def test_get_and_put_keep_a_stream_s_chunks():
    cache = ResponseCache()
    assert await cache.get("k") is None
    await cache.put("k", response("Hello there"), chunks=["Hello", " there"])
    stored = await cache.get("k")
    assert stored.replay_chunks == ("Hello", " there")
    assert stored.response.cost_estimate == 0.002  # stored as it was; mark_cached on serving
    assert CachedResponse(response("x")).replay_chunks == ("x",)
    assert (cache.hits, cache.misses) == (1, 1)
    await cache.clear()
    assert await cache.get("k") is None


# -- coalescing -----------------------------------------------------------------------------


async def test_concurrent_identical_requests_make_one_call():
    cache = ResponseCache()
    call = Counting("shared", delay=0.05)
    results = await asyncio.gather(
        *(cache.get_or_call("k", call, temperature=0) for _ in range(50))
    )
    assert call.calls == 1
    assert {answer.content for answer, _ in results} == {"shared"}
    assert sum(not hit for _, hit in results) == 1
    assert (cache.hits, cache.misses) == (49, 1)
    if HAS_CACHE_FIELDS:
        assert sum(answer.cost_estimate for answer, _ in results) == pytest.approx(0.002)


async def test_a_failure_reaches_every_waiter_and_is_not_cached():
    cache = ResponseCache()
    failing = Counting(delay=0.05, error=AuthenticationError("bad key"))
    results = await asyncio.gather(
        *(cache.get_or_call("k", failing, temperature=0) for _ in range(10)),
        return_exceptions=True,
    )
    assert failing.calls == 1
    assert all(isinstance(result, AuthenticationError) for result in results)
    assert await cache.backend.get("k") is None
    working = Counting("ok")
    answer, hit = await cache.get_or_call("k", working, temperature=0)
    assert (answer.content, hit, working.calls) == ("ok", False, 1)


async def test_different_keys_are_not_coalesced():
    cache = ResponseCache()
    call = Counting(delay=0.01)
    await asyncio.gather(*(cache.get_or_call(f"k{i}", call, temperature=0) for i in range(5)))
    assert call.calls == 5


async def test_one_cancelled_waiter_does_not_cancel_the_shared_call():
    cache = ResponseCache()
    call = Counting(delay=0.1)
    first = asyncio.create_task(cache.get_or_call("k", call, temperature=0))
    second = asyncio.create_task(cache.get_or_call("k", call, temperature=0))
    await asyncio.sleep(0.02)
    first.cancel()
    answer, hit = await second
    assert (answer.content, hit, call.calls, call.cancelled) == ("4", True, 1, 0)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_the_call_is_cancelled_when_every_waiter_is():
    cache = ResponseCache()
    call = Counting(delay=10)
    tasks = [asyncio.create_task(cache.get_or_call("k", call, temperature=0)) for _ in range(3)]
    await asyncio.sleep(0.02)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)
    assert (call.calls, call.cancelled) == (1, 1)
    assert await cache.backend.get("k") is None
    fresh = Counting("again")
    answer, hit = await cache.get_or_call("k", fresh, temperature=0)
    assert (answer.content, hit) == ("again", False)


# -- with the real client -------------------------------------------------------------------


async def test_a_cached_client_call_is_sent_once(server):
    server.enqueue(Reply.ok("Two.", delay=0.05))
    cache = ResponseCache()
    messages = [LLMMessage("user", "Name a prime.")]
    request_key = cache_key(
        provider="openai",
        model="gpt-4o-mini",
        messages=[m.model_dump() for m in messages],
        params={"temperature": 0, "max_tokens": 20},
    )
    async with OpenAIClient(settings=settings_for(server), model="gpt-4o-mini") as client:

        def call():
            return client.generate_text(messages, temperature=0, max_tokens=20)

        results = await asyncio.gather(
            *(cache.get_or_call(request_key, call, temperature=0) for _ in range(5))
        )
        later, hit = await cache.get_or_call(request_key, call, temperature=0)
    assert len(server.requests) == 1
    assert {answer.content for answer, _ in results} | {later.content} == {"Two."}
    assert hit
    if HAS_CACHE_FIELDS:
        assert later.cached
        assert later.original_cost == results[0][0].cost_estimate > 0
