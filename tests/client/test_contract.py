"""One contract, every provider: the same behaviour over each registered provider's recordings."""

from dataclasses import dataclass

import pytest
from structlog.testing import capture_logs

import aiecs_llm
from aiecs_llm import PROVIDERS, LLMMessage
from aiecs_llm.testing import use_cassette
from tests.conftest import CASSETTES, FAKE_KEYS, PROVIDER_NAMES

GREETING = [
    LLMMessage("system", "You are a concise assistant."),
    LLMMessage("user", "Say hello in five words."),
]


@dataclass(frozen=True)
class Expected:
    folder: str
    model: str
    served_model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float  # hand-computed from the provider's public per-1M prices
    key_env: str
    bad_model: str


EXPECTED = {
    "openai": Expected(
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        24,
        7,
        24 * 0.15e-6 + 7 * 0.60e-6,
        "OPENAI_API_KEY",
        "gpt-4o-mni",
    ),
    "anthropic": Expected(
        "anthropic",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        22,
        10,
        22 * 3e-6 + 10 * 15e-6,
        "ANTHROPIC_API_KEY",
        "claude-sonet-4-5",
    ),
    "google": Expected(
        "gemini",
        "gemini-2.5-flash",
        "gemini-2.5-flash",
        13,
        7,
        13 * 0.30e-6 + 7 * 2.50e-6,
        "GOOGLE_AI_API_KEY",
        "gemini-2.5-flahs",
    ),
}


@pytest.fixture
def expected(provider):
    return EXPECTED[provider]


@pytest.fixture
async def client(provider, expected):
    async with PROVIDERS[provider](model=expected.model, max_retries=0) as client:
        yield client


def cassette(expected, case):
    return use_cassette(CASSETTES / expected.folder / f"{case}.yaml", allow_unplayed=False)


def test_every_provider_has_a_complete_cassette_set():
    assert set(EXPECTED) == set(PROVIDERS)
    assert sorted(PROVIDERS) == PROVIDER_NAMES  # the provider fixture covers the registry
    for expected in EXPECTED.values():
        for case in (
            "success",
            "stream",
            "error_401",
            "error_404",
            "error_429",
            "error_400_context",
            "error_500",
            "error_503",
            "stream_error_429",
        ):
            assert (CASSETTES / expected.folder / f"{case}.yaml").is_file(), (expected, case)


async def test_generate_text(client, provider, expected):
    with cassette(expected, "success"):
        response = await client.generate_text(GREETING, max_tokens=50, temperature=0)
    assert response.content == "Hello there, how are you?"
    assert response.provider == provider
    assert response.model == expected.served_model
    assert response.prompt_tokens == expected.prompt_tokens
    assert response.completion_tokens == expected.completion_tokens
    assert response.tokens_used == expected.prompt_tokens + expected.completion_tokens
    assert response.cost_estimate == pytest.approx(expected.cost, rel=1e-9)
    assert response.response_time > 0
    assert response.time_to_first_chunk is None
    assert response.finish_reason == "stop"


async def test_stream_text(client, provider, expected):
    stream = client.stream_text(GREETING, max_tokens=50, temperature=0)
    with cassette(expected, "stream"):
        chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1
    assert "".join(chunks) == "Hello there, how are you?" == stream.text
    response = stream.response
    assert response.content == "Hello there, how are you?"
    assert response.provider == provider
    assert response.model == expected.served_model
    assert response.prompt_tokens == expected.prompt_tokens
    assert response.completion_tokens == expected.completion_tokens
    assert response.cost_estimate == pytest.approx(expected.cost, rel=1e-9)
    assert 0 < response.time_to_first_chunk <= response.response_time


async def test_stream_response_is_unavailable_until_the_end(client, expected):
    stream = client.stream_text(GREETING, max_tokens=50, temperature=0)
    with cassette(expected, "stream"):
        first = await anext(stream)
        assert first
        with pytest.raises(RuntimeError, match="not finished"):
            _ = stream.response
        rest = [chunk async for chunk in stream]
    assert first + "".join(rest) == stream.response.content


@pytest.mark.parametrize(
    ("case", "error_class", "status"),
    [
        ("error_401", aiecs_llm.AuthenticationError, None),
        ("error_404", aiecs_llm.ModelNotFoundError, 404),
        ("error_429", aiecs_llm.RateLimitError, 429),
        ("error_400_context", aiecs_llm.ContextWindowExceededError, 400),
        ("error_500", aiecs_llm.ProviderNotAvailableError, 500),
        ("error_503", aiecs_llm.ProviderNotAvailableError, 503),
    ],
)
async def test_errors_are_classified(client, provider, expected, case, error_class, status):
    model = expected.bad_model if case == "error_404" else expected.model
    with cassette(expected, case), pytest.raises(error_class) as caught:
        await client.generate_text(GREETING, model=model, max_tokens=50, temperature=0)
    error = caught.value
    assert type(error) is error_class
    assert error.provider == provider
    assert error.model
    assert error.model.endswith(model)
    if status is not None:
        assert error.status_code == status
    assert error.__cause__ is not None
    assert error.message
    assert FAKE_KEYS[expected.key_env] not in str(error)
    if case == "error_429":
        assert error.retry_after == 7.0


async def test_errors_in_streams_are_classified_before_the_first_chunk(client, expected):
    stream = client.stream_text(GREETING, max_tokens=50, temperature=0)
    with cassette(expected, "stream_error_429"), pytest.raises(aiecs_llm.RateLimitError) as caught:
        await anext(stream)
    assert caught.value.retry_after == 7.0
    assert stream.text == ""


async def test_anthropic_529_overloaded():
    async with aiecs_llm.AnthropicClient(max_retries=0) as client:
        with (
            cassette(EXPECTED["anthropic"], "error_529"),
            pytest.raises(aiecs_llm.ProviderNotAvailableError) as caught,
        ):
            await client.generate_text(GREETING, model="claude-sonnet-4-5", max_tokens=50)
    assert caught.value.code == "overloaded_error"


async def test_one_log_event_per_request_without_content_or_keys(client, provider, expected):
    with capture_logs() as events, cassette(expected, "success"):
        await client.generate_text(GREETING, max_tokens=50, temperature=0)
    completed = [event for event in events if event["event"] == "llm.request.completed"]
    assert len(completed) == 1
    event = completed[0]
    assert event["provider"] == provider
    assert event["model"] == expected.served_model
    assert event["prompt_tokens"] == expected.prompt_tokens
    assert event["completion_tokens"] == expected.completion_tokens
    assert event["cost_usd"] == pytest.approx(expected.cost)
    assert event["latency_ms"] > 0
    flat = repr(events)
    assert "Say hello" not in flat
    assert "Hello there" not in flat
    assert FAKE_KEYS[expected.key_env] not in flat


async def test_content_is_logged_only_on_request(provider, expected):
    client = PROVIDERS[provider](model=expected.model, max_retries=0, log_content=True)
    async with client:
        with capture_logs() as events, cassette(expected, "success"):
            await client.generate_text(GREETING, max_tokens=50, temperature=0)
    (event,) = [event for event in events if event["event"] == "llm.request.completed"]
    assert event["content"] == "Hello there, how are you?"
    assert event["messages"][1]["content"] == "Say hello in five words."


async def test_failed_request_is_logged_once(client, expected):
    with (
        capture_logs() as events,
        cassette(expected, "error_500"),
        pytest.raises(aiecs_llm.ProviderNotAvailableError),
    ):
        await client.generate_text(GREETING, max_tokens=50, temperature=0)
    failed = [event for event in events if event["event"] == "llm.request.failed"]
    assert len(failed) == 1
    assert failed[0]["error"] == "ProviderNotAvailableError"


async def test_close_is_idempotent_and_final(provider, expected):
    client = PROVIDERS[provider](model=expected.model, max_retries=0)
    with cassette(expected, "success"):
        await client.generate_text(GREETING, max_tokens=50, temperature=0)
    await client.close()
    await client.close()
    with pytest.raises(aiecs_llm.ConfigurationError, match="closed"):
        await client.generate_text(GREETING)


async def test_the_same_model_string_works_through_create_client(provider, expected):
    prefix = {"openai": "openai", "anthropic": "anthropic", "google": "gemini"}[provider]
    async with aiecs_llm.create_client(f"{prefix}/{expected.model}", max_retries=0) as client:
        assert type(client) is PROVIDERS[provider]
        with cassette(expected, "success"):
            response = await client.generate_text(GREETING, max_tokens=50, temperature=0)
    assert response.provider == provider
    assert response.model == expected.served_model


async def test_generic_client_switches_provider_by_model_string(provider, expected):
    prefix = {"openai": "openai", "anthropic": "anthropic", "google": "gemini"}[provider]
    async with aiecs_llm.LiteLLMClient(max_retries=0) as client:
        with cassette(expected, "success"):
            response = await client.generate_text(
                GREETING, model=f"{prefix}/{expected.model}", max_tokens=50, temperature=0
            )
    assert response.provider == provider
    assert response.content == "Hello there, how are you?"
