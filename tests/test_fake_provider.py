"""The fake provider server speaks each wire format well enough for raw LiteLLM to parse it.

These tests drive `litellm.acompletion` itself (no aiecs_llm code), so they also pin down how
LiteLLM 1.110.2 reports each provider's faults; the comments flag the surprising ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # after the cost-map switch: LiteLLM reads it at import
from litellm.exceptions import MidStreamFallbackError

from tests.fake_provider import DEFAULT_TEXT, FakeProviderServer, Reply

litellm.suppress_debug_info = True
pytestmark = pytest.mark.asyncio

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Say hello in five words."},
]


@dataclass(frozen=True)
class Target:
    provider: str
    model: str
    served_model: str  # what the response names: the dated version, or Gemini's alias

    def base(self, server: FakeProviderServer) -> str:
        return {
            "openai": server.openai_base,
            "anthropic": server.anthropic_base,
            "gemini": server.gemini_base,
        }[self.provider]


OPENAI = Target("openai", "openai/gpt-4o-mini", "gpt-4o-mini-2024-07-18")
ANTHROPIC = Target("anthropic", "anthropic/claude-sonnet-4-5", "claude-sonnet-4-5-20250929")
GEMINI = Target("gemini", "gemini/gemini-2.5-flash", "gemini-2.5-flash")
TARGETS = [OPENAI, ANTHROPIC, GEMINI]
BY_NAME = {target.provider: target for target in TARGETS}


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(seed=0) as running:
        yield running


def _kwargs(
    server: FakeProviderServer, target: Target, stream: bool, **extra: Any
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": target.model,
        "messages": MESSAGES,
        "api_base": target.base(server),
        "api_key": "test-key",
        "num_retries": 0,
        "max_retries": 0,
        "max_tokens": 50,
        "temperature": 0,
        "timeout": 10,
    }
    if stream:
        kwargs |= {"stream": True, "stream_options": {"include_usage": True}}
    return kwargs | extra


async def complete(server: FakeProviderServer, target: Target, **extra: Any) -> Any:
    return await litellm.acompletion(**_kwargs(server, target, False, **extra))


async def stream(
    server: FakeProviderServer, target: Target, chunks: list[Any], **extra: Any
) -> None:
    """Collect chunks into `chunks`, so a test still sees them when the stream raises."""
    response = await litellm.acompletion(**_kwargs(server, target, True, **extra))
    async for chunk in response:
        chunks.append(chunk)


def text_of(chunks: list[Any]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def usage_of(chunks: list[Any]) -> Any:
    usages = [getattr(chunk, "usage", None) for chunk in chunks]
    return next((usage for usage in reversed(usages) if usage), None)


# -- success ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.provider)
async def test_success_is_parsed(server: FakeProviderServer, target: Target) -> None:
    server.enqueue(Reply.ok("Hi from the fake.", prompt_tokens=30, completion_tokens=5))

    response = await complete(server, target)

    assert response.choices[0].message.content == "Hi from the fake."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == target.served_model
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (30, 5)
    assert response.usage.total_tokens == 35
    [request] = server.requests
    assert request.provider == target.provider
    assert request.model == target.model.split("/", 1)[1]
    assert request.stream is False


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.provider)
async def test_stream_is_parsed_with_usage_at_the_end(
    server: FakeProviderServer, target: Target
) -> None:
    server.enqueue(Reply.ok(DEFAULT_TEXT, prompt_tokens=22, completion_tokens=8, chunks=5))
    chunks: list[Any] = []

    await stream(server, target, chunks)

    assert text_of(chunks) == DEFAULT_TEXT
    usage = usage_of(chunks)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (22, 8, 30)
    assert server.requests[0].stream is True


async def test_openai_stream_sends_include_usage(server: FakeProviderServer) -> None:
    await stream(server, OPENAI, [])
    assert server.requests[0].json["stream_options"] == {"include_usage": True}


async def test_model_override_and_request_details(server: FakeProviderServer) -> None:
    server.enqueue(Reply.ok(model="gpt-4o-mini-2099-01-01"))

    response = await complete(server, OPENAI)

    assert response.model == "gpt-4o-mini-2099-01-01"
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.json["messages"] == MESSAGES


async def test_blocking_litellm_call_works_too(server: FakeProviderServer) -> None:
    # The server has its own loop in its own thread, so blocking clients work as well.
    response = await asyncio.to_thread(litellm.completion, **_kwargs(server, ANTHROPIC, False))
    assert response.choices[0].message.content == DEFAULT_TEXT


# -- scripting -------------------------------------------------------------------------------


async def test_replies_are_used_in_order_then_the_default(server: FakeProviderServer) -> None:
    server.enqueue(Reply.rate_limited(retry_after="2"), Reply.ok("second"))
    assert server.pending == 2

    with pytest.raises(litellm.RateLimitError):
        await complete(server, OPENAI)
    assert (await complete(server, ANTHROPIC)).choices[0].message.content == "second"
    assert (await complete(server, GEMINI)).choices[0].message.content == DEFAULT_TEXT
    assert server.pending == 0
    assert [r.provider for r in server.requests] == ["openai", "anthropic", "gemini"]

    server.clear()
    assert server.requests == []


async def test_custom_default_reply() -> None:
    async with FakeProviderServer(default=Reply.server_error()) as server:
        with pytest.raises(litellm.InternalServerError):
            await complete(server, OPENAI)


async def test_unknown_path_is_404_and_keeps_the_queue(server: FakeProviderServer) -> None:
    server.enqueue(Reply.server_error())
    # LiteLLM's gemini/ provider with a bare api_base calls /models/...: gemini_base has /v1beta.
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{server.url}/models/gemini-2.5-flash:generateContent", json={}
        )
    assert response.status_code == 404
    assert "no provider API" in response.json()["error"]["message"]
    assert server.pending == 1
    assert server.requests[0].provider is None


async def test_addresses(server: FakeProviderServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.openai_base == server.url + "/v1"
    assert server.anthropic_base == server.url
    assert server.gemini_base == server.url + "/v1beta"


# -- provider errors -------------------------------------------------------------------------

# (reply, target, LiteLLM exception, LiteLLM status_code)
ERROR_CASES: list[tuple[str, Reply, Target, type[Exception], int]] = [
    ("401", Reply.invalid_api_key(), OPENAI, litellm.AuthenticationError, 401),
    ("401", Reply.invalid_api_key(), ANTHROPIC, litellm.AuthenticationError, 401),
    # Gemini sends HTTP 400 INVALID_ARGUMENT/API_KEY_INVALID; LiteLLM maps it to 401.
    ("401", Reply.invalid_api_key(), GEMINI, litellm.AuthenticationError, 401),
    # 403: three providers, three different LiteLLM classes.
    ("403", Reply.permission_denied(), OPENAI, litellm.APIError, 403),
    ("403", Reply.permission_denied(), ANTHROPIC, litellm.PermissionDeniedError, 403),
    ("403", Reply.permission_denied(), GEMINI, litellm.BadRequestError, 403),
    ("404", Reply.model_not_found(), OPENAI, litellm.NotFoundError, 404),
    ("404", Reply.model_not_found(), ANTHROPIC, litellm.NotFoundError, 404),
    ("404", Reply.model_not_found(), GEMINI, litellm.NotFoundError, 404),
    ("429", Reply.rate_limited(retry_after=7), OPENAI, litellm.RateLimitError, 429),
    ("429", Reply.rate_limited(retry_after=7), ANTHROPIC, litellm.RateLimitError, 429),
    ("429", Reply.rate_limited(retry_after=7), GEMINI, litellm.RateLimitError, 429),
    ("quota", Reply.quota_exceeded(), OPENAI, litellm.RateLimitError, 429),
    ("quota", Reply.quota_exceeded(), ANTHROPIC, litellm.BadRequestError, 400),
    ("quota", Reply.quota_exceeded(), GEMINI, litellm.RateLimitError, 429),
    ("context", Reply.context_length_exceeded(), OPENAI, litellm.ContextWindowExceededError, 400),
    (
        "context",
        Reply.context_length_exceeded(),
        ANTHROPIC,
        litellm.ContextWindowExceededError,
        400,
    ),
    ("context", Reply.context_length_exceeded(), GEMINI, litellm.ContextWindowExceededError, 400),
    ("500", Reply.server_error(), OPENAI, litellm.InternalServerError, 500),
    ("500", Reply.server_error(), ANTHROPIC, litellm.InternalServerError, 500),
    ("500", Reply.server_error(), GEMINI, litellm.InternalServerError, 500),
    ("503", Reply.unavailable(), OPENAI, litellm.ServiceUnavailableError, 503),
    # Anthropic's real 503 is a text/plain body from its proxy; LiteLLM copes.
    ("503", Reply.unavailable(), ANTHROPIC, litellm.ServiceUnavailableError, 503),
    # Gemini's 503 UNAVAILABLE comes out as a 500 InternalServerError.
    ("503", Reply.unavailable(), GEMINI, litellm.InternalServerError, 500),
    # Anthropic's 529 overloaded_error comes out as a 500 InternalServerError.
    ("529", Reply.overloaded(), ANTHROPIC, litellm.InternalServerError, 500),
    ("529", Reply.overloaded(), OPENAI, litellm.APIError, 529),
]


@pytest.mark.parametrize(
    ("reply", "target", "error", "status"),
    [case[1:] for case in ERROR_CASES],
    ids=[f"{case[2].provider}-{case[0]}" for case in ERROR_CASES],
)
async def test_provider_errors_are_mapped(
    server: FakeProviderServer, reply: Reply, target: Target, error: type[Exception], status: int
) -> None:
    server.enqueue(reply)

    with pytest.raises(error) as raised:
        await complete(server, target)

    assert raised.value.status_code == status  # type: ignore[attr-defined]


@pytest.mark.parametrize("target", [OPENAI, ANTHROPIC], ids=lambda t: t.provider)
async def test_stream_errors_are_raised_by_the_call(
    server: FakeProviderServer, target: Target
) -> None:
    # A 401 on a stream=true request is a plain JSON body, not SSE.
    server.enqueue(Reply.invalid_api_key())
    with pytest.raises(litellm.AuthenticationError):
        await litellm.acompletion(**_kwargs(server, target, True))


async def test_gemini_stream_errors_surface_on_the_first_read(server: FakeProviderServer) -> None:
    # LiteLLM sends a Gemini stream request lazily: acompletion returns, iteration raises.
    # Retryable statuses come wrapped in MidStreamFallbackError; the real class is inside.
    server.enqueue(Reply.rate_limited(retry_after=3), Reply.model_not_found())
    response = await litellm.acompletion(**_kwargs(server, GEMINI, True))
    assert server.requests == []
    with pytest.raises(MidStreamFallbackError) as raised:
        async for _ in response:
            pass
    assert raised.value.status_code == 429
    assert isinstance(raised.value.original_exception, litellm.RateLimitError)

    with pytest.raises(litellm.NotFoundError):  # not retryable: raised as itself
        await stream(server, GEMINI, [])


@pytest.mark.parametrize("target", [OPENAI, ANTHROPIC], ids=lambda t: t.provider)
@pytest.mark.parametrize(
    ("reply", "header", "value"),
    [
        (Reply.rate_limited(retry_after="7"), "retry-after", "7"),
        (
            Reply.rate_limited(retry_after=datetime(2030, 1, 1, tzinfo=UTC)),
            "retry-after",
            "Tue, 01 Jan 2030 00:00:00 GMT",
        ),
        (Reply.rate_limited(retry_after_ms=1500), "retry-after-ms", "1500"),
    ],
    ids=["seconds", "http-date", "ms"],
)
async def test_retry_after_reaches_the_exception(
    server: FakeProviderServer, target: Target, reply: Reply, header: str, value: str
) -> None:
    server.enqueue(reply)
    with pytest.raises(litellm.RateLimitError) as raised:
        await complete(server, target)
    # `litellm_response_headers` is the one place all three providers expose them.
    headers = raised.value.litellm_response_headers
    assert headers is not None
    assert headers[header] == value


@pytest.mark.parametrize(
    ("reply", "delay"),
    [
        (Reply.rate_limited(retry_after="7"), '"7s"'),
        (Reply.rate_limited(retry_after_ms=1500), '"1.500s"'),
    ],
    ids=["seconds", "ms"],
)
async def test_gemini_states_its_retry_delay_in_the_body(
    server: FakeProviderServer, reply: Reply, delay: str
) -> None:
    server.enqueue(reply)
    with pytest.raises(litellm.RateLimitError) as raised:
        await complete(server, GEMINI)
    headers = raised.value.litellm_response_headers or {}
    assert "retry-after" not in headers
    assert "google.rpc.RetryInfo" in str(raised.value)
    assert f'"retryDelay": {delay}' in str(raised.value)


# -- transport faults ------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.provider)
async def test_reset_connection_is_a_500_connection_error(
    server: FakeProviderServer, target: Target
) -> None:
    server.enqueue(Reply.reset_connection())
    with pytest.raises(openai.APIError) as raised:
        await complete(server, target)
    assert isinstance(raised.value, litellm.InternalServerError | litellm.APIConnectionError)
    assert raised.value.status_code == 500


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.provider)
async def test_hang_times_out(server: FakeProviderServer, target: Target) -> None:
    server.enqueue(Reply.hang())
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        await complete(server, target, timeout=0.5)
    assert time.monotonic() - started < 5


async def test_hang_is_released_when_the_server_stops() -> None:
    server = FakeProviderServer().start()
    server.enqueue(Reply.hang())
    call = asyncio.create_task(complete(server, ANTHROPIC, timeout=30))
    for _ in range(3000):  # until the request is in; bounded so a bug cannot hang the suite
        if server.requests:
            break
        await asyncio.sleep(0.01)
    await asyncio.to_thread(server.stop)
    with pytest.raises(litellm.InternalServerError, match="disconnected"):
        await asyncio.wait_for(call, 10)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.provider)
async def test_delay_before_first_byte(server: FakeProviderServer, target: Target) -> None:
    server.enqueue(Reply.ok().with_delay(0.3), Reply.ok().with_delay(2))
    started = time.monotonic()
    await complete(server, target)
    assert time.monotonic() - started >= 0.3
    with pytest.raises(litellm.Timeout):
        await complete(server, target, timeout=0.5)


@pytest.mark.parametrize(
    ("target", "error", "status"),
    [
        (OPENAI, litellm.InternalServerError, 500),
        (ANTHROPIC, litellm.APIConnectionError, 500),
        # LiteLLM reports Gemini's unparseable body as a 422 BadRequestError.
        (GEMINI, litellm.BadRequestError, 422),
    ],
    ids=lambda value: getattr(value, "provider", None),
)
async def test_malformed_json(
    server: FakeProviderServer, target: Target, error: type[Exception], status: int
) -> None:
    server.enqueue(Reply.malformed_json())
    with pytest.raises(error) as raised:
        await complete(server, target)
    assert raised.value.status_code == status  # type: ignore[attr-defined]


async def test_malformed_stream_event_raises_for_openai(server: FakeProviderServer) -> None:
    server.enqueue(Reply.malformed_json())
    with pytest.raises(MidStreamFallbackError):
        await stream(server, OPENAI, [])


@pytest.mark.parametrize("target", [ANTHROPIC, GEMINI], ids=lambda t: t.provider)
async def test_malformed_stream_event_ends_anthropic_and_gemini_streams_silently(
    server: FakeProviderServer, target: Target
) -> None:
    # LiteLLM takes an unparseable event for the start of JSON split across lines, swallows the
    # rest of the stream, and reports a normal "stop" with no text and no usage.
    server.enqueue(Reply.malformed_json())
    chunks: list[Any] = []
    await stream(server, target, chunks)
    assert text_of(chunks) == ""
    assert usage_of(chunks) is None
    assert any(chunk.choices and chunk.choices[0].finish_reason == "stop" for chunk in chunks)


@pytest.mark.parametrize(
    ("target", "after", "received"),
    [
        (OPENAI, 3, "Hello there, how"),  # role chunk + two text chunks
        (ANTHROPIC, 5, "Hello there, how"),  # message_start, block_start, ping + two deltas
        (GEMINI, 2, "Hello there, how"),  # Gemini's first event already carries text
    ],
    ids=lambda value: getattr(value, "provider", None),
)
async def test_cut_stream(
    server: FakeProviderServer, target: Target, after: int, received: str
) -> None:
    server.enqueue(Reply.cut_stream(after_chunks=after))
    chunks: list[Any] = []
    with pytest.raises(MidStreamFallbackError) as raised:
        await stream(server, target, chunks)
    assert raised.value.status_code == 500
    # Anthropic's parser hands out a text delta only when the next event arrives, so the last
    # delta before the cut may be lost.
    assert received.startswith(text_of(chunks))
    assert text_of(chunks)
    assert usage_of(chunks) is None


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.provider)
async def test_cut_body_of_a_plain_request(server: FakeProviderServer, target: Target) -> None:
    server.enqueue(Reply.cut_stream())
    with pytest.raises((litellm.InternalServerError, litellm.APIConnectionError)) as raised:
        await complete(server, target)
    assert raised.value.status_code == 500


# -- the bytes on the wire -------------------------------------------------------------------


async def _post(server: FakeProviderServer, provider: str, *, stream: bool) -> httpx.Response:
    body: dict[str, Any] = {"model": BY_NAME[provider].model.split("/")[1], "stream": stream}
    if provider == "gemini":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{server.gemini_base}/models/gemini-2.5-flash:{method}"
        body = {"contents": []}
    elif provider == "openai":
        url = f"{server.openai_base}/chat/completions"
        if stream:
            body["stream_options"] = {"include_usage": True}
    else:
        url = f"{server.anthropic_base}/v1/messages"
    async with httpx.AsyncClient() as client:
        return await client.post(url, json=body)


async def test_openai_sse_framing(server: FakeProviderServer) -> None:
    response = await _post(server, "openai", stream=True)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["x-request-id"].startswith("req_")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 30
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert len({chunk["id"] for chunk in chunks}) == 1


async def test_anthropic_sse_framing(server: FakeProviderServer) -> None:
    response = await _post(server, "anthropic", stream=True)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["request-id"].startswith("req_")
    names = [block.split("\n")[0] for block in response.text.strip().split("\n\n")]
    assert names == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        *["event: content_block_delta"] * 4,
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]


async def test_gemini_sse_framing(server: FakeProviderServer) -> None:
    response = await _post(server, "gemini", stream=True)
    assert response.headers["content-type"] == "text/event-stream"
    events = response.text.split("\r\n\r\n")
    assert events[-1] == ""
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert all("usageMetadata" in chunk for chunk in chunks)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert len({chunk["responseId"] for chunk in chunks}) == 1


@pytest.mark.parametrize(
    ("provider", "reply", "status", "field", "value"),
    [
        ("openai", Reply.rate_limited(7), 429, ("error", "code"), "rate_limit_exceeded"),
        ("anthropic", Reply.overloaded(), 529, ("error", "type"), "overloaded_error"),
        (
            "gemini",
            Reply.invalid_api_key(),
            400,
            ("error", "details", 0, "reason"),
            "API_KEY_INVALID",
        ),
        ("gemini", Reply.unavailable(), 503, ("error", "status"), "UNAVAILABLE"),
    ],
)
async def test_error_bodies(
    server: FakeProviderServer,
    provider: str,
    reply: Reply,
    status: int,
    field: tuple[str | int, ...],
    value: str,
) -> None:
    server.enqueue(reply)
    response = await _post(server, provider, stream=True)  # errors are JSON even on stream requests
    assert response.status_code == status
    found: Any = response.json()
    for key in field:
        found = found[key]
    assert found == value


async def test_openai_429_headers(server: FakeProviderServer) -> None:
    server.enqueue(Reply.rate_limited(retry_after=7))
    headers = (await _post(server, "openai", stream=False)).headers
    assert headers["retry-after"] == "7"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "7s"


async def test_anthropic_503_is_plain_text(server: FakeProviderServer) -> None:
    server.enqueue(Reply.unavailable())
    response = await _post(server, "anthropic", stream=False)
    assert response.status_code == 503
    assert response.headers["content-type"] == "text/plain"
    assert response.text.startswith("upstream connect error")


async def test_extra_headers(server: FakeProviderServer) -> None:
    server.enqueue(Reply.server_error().with_headers(x_should_retry="false"))
    response = await _post(server, "anthropic", stream=False)
    assert response.headers["x-should-retry"] == "false"
