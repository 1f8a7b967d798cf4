"""The retry layer against the local fault-injecting server: what is retried, how long it waits."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

import aiecs_llm
from aiecs_llm import LLMMessage
from aiecs_llm.resilience import retry
from tests.fake_provider import Reply
from tests.servers import client_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]


@pytest.mark.parametrize(
    "failure",
    [
        Reply.rate_limited(retry_after_ms=20),
        Reply.server_error(),
        Reply.unavailable(retry_after="0"),
        Reply.reset_connection(),
    ],
    ids=["429", "500", "503", "reset"],
)
async def test_transient_failures_are_retried(server, provider, failure, monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)
    server.enqueue(failure, Reply.ok("second time lucky"))
    with capture_logs() as events:
        async with client_for(server, provider, max_retries=2) as client:
            response = await client.generate_text(MESSAGES)
    assert response.content == "second time lucky"
    assert len(server.requests) == 2
    retries = [event for event in events if event["event"] == "llm.request.retrying"]
    assert len(retries) == 1
    assert retries[0]["attempt"] == 1
    assert retries[0]["reason"] in {"RateLimitError", "ProviderNotAvailableError"}


async def test_anthropic_529_is_retried(server, monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)
    server.enqueue(Reply.overloaded(), Reply.ok("after the overload"))
    async with client_for(server, "anthropic", max_retries=1) as client:
        response = await client.generate_text(MESSAGES)
    assert response.content == "after the overload"


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (Reply.invalid_api_key(), aiecs_llm.AuthenticationError),
        (Reply.model_not_found(), aiecs_llm.ModelNotFoundError),
        (Reply.context_length_exceeded(), aiecs_llm.ContextWindowExceededError),
    ],
    ids=["401", "404", "400-context"],
)
async def test_caller_errors_are_never_retried(server, provider, failure, error_class):
    server.enqueue(failure, Reply.ok())
    async with client_for(server, provider, max_retries=3) as client:
        with pytest.raises(error_class):
            await client.generate_text(MESSAGES)
    assert len(server.requests) == 1


async def test_exhausted_quota_is_not_retried(server):
    server.enqueue(Reply.quota_exceeded(), Reply.ok())
    async with client_for(server, "openai", max_retries=3) as client:
        with pytest.raises(aiecs_llm.QuotaExceededError):
            await client.generate_text(MESSAGES)
    assert len(server.requests) == 1


async def test_retries_stop_after_max_retries(server, provider, monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)
    server.enqueue(*[Reply.server_error()] * 5)
    async with client_for(server, provider, max_retries=2) as client:
        with pytest.raises(aiecs_llm.ProviderNotAvailableError):
            await client.generate_text(MESSAGES)
    assert len(server.requests) == 3


async def test_per_call_max_retries_overrides_the_client(server, monkeypatch):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)
    server.enqueue(Reply.server_error(), Reply.ok())
    async with client_for(server, "openai", max_retries=3) as client:
        with pytest.raises(aiecs_llm.ProviderNotAvailableError):
            await client.generate_text(MESSAGES, max_retries=0)
    assert len(server.requests) == 1


async def test_retry_after_seconds_is_honoured(server):
    server.enqueue(Reply.rate_limited(retry_after="1"), Reply.ok())
    async with client_for(server, "anthropic", max_retries=1) as client:
        started = time.monotonic()
        await client.generate_text(MESSAGES)
    assert time.monotonic() - started >= 1.0


async def test_retry_after_http_date_is_honoured(server):
    started = time.monotonic()
    when = datetime.now(UTC) + timedelta(seconds=2)
    # HTTP dates have one-second resolution: the header names the whole second before `when`,
    # between 1 and 2 s from now.
    named = when.replace(microsecond=0)
    server.enqueue(Reply.rate_limited(retry_after=when), Reply.ok())
    with capture_logs() as events:
        async with client_for(server, "openai", max_retries=1) as client:
            await client.generate_text(MESSAGES)
    # Not before the date (a busy machine only makes the retry later)...
    assert time.monotonic() - started >= (named - when).total_seconds() + 2 - 0.05
    # ...and the wait decided is what is left until it, with no backoff on top: at most 2 s.
    (retrying,) = [event for event in events if event["event"] == "llm.request.retrying"]
    assert 0 <= retrying["wait_seconds"] <= 2.0
    assert len(server.requests) == 2


async def test_retry_after_beyond_the_cap_fails_at_once(server):
    server.enqueue(Reply.rate_limited(retry_after=str(int(retry.MAX_RETRY_AFTER) + 60)), Reply.ok())
    with capture_logs() as events:
        async with client_for(server, "openai", max_retries=3) as client:
            started = time.monotonic()
            with pytest.raises(aiecs_llm.RateLimitError) as caught:
                await client.generate_text(MESSAGES)
    assert time.monotonic() - started < 30  # not the 120 s asked for
    assert "llm.request.retrying" not in [event["event"] for event in events]  # no wait begun
    assert caught.value.retry_after == retry.MAX_RETRY_AFTER + 60
    assert len(server.requests) == 1


async def test_retry_after_beyond_the_deadline_fails_at_once(server):
    # 40 s is within the 60 s cap, but past the call's 20 s deadline.
    server.enqueue(Reply.rate_limited(retry_after="40"), Reply.ok())
    with capture_logs() as events:
        async with client_for(server, "google", max_retries=3, timeout=20) as client:
            started = time.monotonic()
            with pytest.raises(aiecs_llm.RateLimitError):
                await client.generate_text(MESSAGES)
    assert time.monotonic() - started < 15  # neither the 40 s asked for nor the deadline's 20
    assert "llm.request.retrying" not in [event["event"] for event in events]  # no wait begun
    assert len(server.requests) == 1


async def test_a_hanging_provider_times_out(server, provider):
    server.enqueue(Reply.hang())
    async with client_for(server, provider, max_retries=0, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(aiecs_llm.RequestTimeoutError):
            await client.generate_text(MESSAGES)
    assert time.monotonic() - started < 20  # the server never answers: the timeout ended it


async def test_malformed_json_is_a_classified_error(server, provider):
    server.enqueue(Reply.malformed_json())
    async with client_for(server, provider, max_retries=0) as client:
        with pytest.raises(aiecs_llm.LLMClientError) as caught:
            await client.generate_text(MESSAGES)
    assert type(caught.value) is not aiecs_llm.LLMClientError


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (aiecs_llm.RateLimitError("x"), True),
        (aiecs_llm.ProviderNotAvailableError("x"), True),
        (aiecs_llm.RequestTimeoutError("x"), True),
        (aiecs_llm.QuotaExceededError("x"), False),
        (aiecs_llm.RequestTooLargeError("x"), False),
        (aiecs_llm.CircuitOpenError("x"), True),
        (aiecs_llm.StreamInterruptedError("x"), False),
        (aiecs_llm.AuthenticationError("x"), False),
        (aiecs_llm.ModelNotFoundError("x"), False),
        (aiecs_llm.InvalidRequestError("x"), False),
        (aiecs_llm.ContextWindowExceededError("x"), False),
        (aiecs_llm.ContentPolicyError("x"), False),
        (aiecs_llm.InvalidResponseError("x"), False),
        (aiecs_llm.ConfigurationError("x"), False),
        (aiecs_llm.BudgetExceededError("x"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_retry_decision_table(error, retried):
    assert retry.is_retryable(error) is retried


@pytest.mark.parametrize("asked", ["nan", "-1", "inf"])
async def test_an_unreadable_retry_after_falls_back_to_the_backoff(server, asked, monkeypatch):
    # Issue 15: "nan" reached asyncio.sleep(nan) and hung past the deadline; "-1" retried at
    # once with no backoff at all.
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)
    server.enqueue(Reply.rate_limited(asked), Reply.ok("after the backoff"))
    with capture_logs() as events:
        async with client_for(server, "openai", max_retries=1, timeout=30) as client:
            response = await client.generate_text(MESSAGES)
    assert response.content == "after the backoff"
    (retrying,) = [event for event in events if event["event"] == "llm.request.retrying"]
    assert 0 < retrying["wait_seconds"] <= retry.MAX_RETRY_DELAY


async def test_a_huge_retry_after_gives_up_at_once_and_benches_the_key_an_hour_at_most(server):
    server.enqueue(Reply.rate_limited("99999999"))
    async with client_for(server, "openai", max_retries=2, timeout=30) as client:
        with pytest.raises(aiecs_llm.RateLimitError) as caught:
            await client.generate_text(MESSAGES)
    assert caught.value.retry_after == 99999999.0  # what the server said, reported as is
    assert len(server.requests) == 1  # a wait beyond max_retry_after is not waited out
