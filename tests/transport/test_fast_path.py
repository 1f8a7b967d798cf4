"""Which calls the fast transport carries, and that it sends what ``litellm.acompletion`` sends:
the same request body and credentials on the wire, the same ``LLMResponse`` or error back, for
every keyword LiteLLM maps (each used to push a call onto the other path), on OpenAI (a GPT and
an o-series model) and Anthropic, whole and streamed. Calls it does not carry (a keyword LiteLLM
resolves itself, Gemini, LiteLLM callbacks) go through ``acompletion``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiecs_llm import LLMClientError, LLMMessage
from aiecs_llm.transport import fast
from tests.fake_provider import Reply
from tests.reliability.chaos_server import ChaosServer, RawReply
from tests.servers import base_url

MESSAGES = [LLMMessage("system", "Be brief."), LLMMessage("user", "Say hello")]
TIMINGS = {"response_time", "time_to_first_chunk"}
MODELS = {
    "openai": "gpt-4o-mini",
    "o-series": "o3-mini",
    "anthropic": "claude-sonnet-4-5",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "greeting",
        "schema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
KEYWORDS: dict[str, dict[str, Any]] = {
    "none": {},
    "seed": {"seed": 7},
    "top_p": {"top_p": 0.5},
    "stop": {"stop": ["\n\n", "END"]},
    "n": {"n": 2},
    "penalties": {"presence_penalty": 0.5, "frequency_penalty": 0.25},
    "user": {"user": "user-1"},
    "logit_bias": {"logit_bias": {"50256": -100}},
    "logprobs": {"logprobs": True, "top_logprobs": 2},
    "tools": {"tools": [WEATHER_TOOL], "tool_choice": "auto"},
    "parallel_tool_calls": {"tools": [WEATHER_TOOL], "parallel_tool_calls": False},
    "json_object": {"response_format": {"type": "json_object"}},
    "json_schema": {"response_format": SCHEMA},
    "max_completion_tokens": {"max_completion_tokens": 30},
}
# What each model takes (LiteLLM refuses the rest before sending, on both paths alike; those
# refusals are compared too, in test_a_refused_keyword_is_refused_alike).
TAKES = {
    "openai": set(KEYWORDS),
    "o-series": {
        "none",
        "seed",
        "stop",
        "n",
        "user",
        "logit_bias",
        "tools",
        "json_object",
        "json_schema",
        "max_completion_tokens",
    },
    "anthropic": {"none", "top_p", "stop", "user", "tools", "json_object", "json_schema"},
}
CASES = [(model, name) for model in MODELS for name in KEYWORDS if name in TAKES[model]]


@pytest.fixture
async def server() -> AsyncIterator[ChaosServer]:
    async with ChaosServer() as running:
        yield running


def _client(server: ChaosServer, model: str) -> Any:
    from aiecs_llm import AnthropicClient, OpenAIClient

    provider = "anthropic" if model == "anthropic" else "openai"
    client_class = AnthropicClient if provider == "anthropic" else OpenAIClient
    return client_class(
        api_key="test-key-fast-path-0000",
        base_url=base_url(server, provider),
        model=MODELS[model],
        max_retries=0,
    )


async def _outcome(
    server: ChaosServer,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    *,
    fast_on: bool,
    stream: bool,
    replies: tuple[Any, ...] = (),
    **keywords: Any,
) -> dict[str, Any]:
    """One call on one path: what it gave, what went out, which path it took."""
    monkeypatch.setenv(fast.ENABLE_ENV, "1" if fast_on else "0")
    server.clear()
    server.enqueue(*(replies or (Reply.ok(),)))
    client = _client(server, model)
    chunks: list[str] = []
    try:
        if stream:
            text_stream = client.stream_text(MESSAGES, max_tokens=40, **keywords)
            chunks = [chunk async for chunk in text_stream]
            result: dict[str, Any] = text_stream.response.model_dump(exclude=TIMINGS)
        else:
            response = await client.generate_text(MESSAGES, max_tokens=40, **keywords)
            result = response.model_dump(exclude=TIMINGS)
    except LLMClientError as error:
        result = {
            "error": type(error).__name__,
            **{name: getattr(error, name) for name in ("message", "status_code", "code")},
        }
    finally:
        took_fast = client._fast is not None and client._fast.requests_sent > 0
        await client.close()
    sent = [
        {
            "path": request.path,
            "body": request.json,
            "credentials": {
                name: request.headers.get(name)
                for name in ("authorization", "x-api-key", "anthropic-version", "anthropic-beta")
            },
        }
        for request in server.requests
    ]
    return {"result": result, "chunks": chunks, "sent": sent, "fast": took_fast}


async def _both(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch, model: str, **options: Any
) -> dict[str, Any]:
    through_litellm = await _outcome(server, monkeypatch, model, fast_on=False, **options)
    through_fast = await _outcome(server, monkeypatch, model, fast_on=True, **options)
    assert not through_litellm["fast"]
    for part in ("result", "chunks", "sent"):
        assert through_fast[part] == through_litellm[part], part
    return through_fast


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("model", "keywords"), CASES, ids=[f"{m}-{k}" for m, k in CASES])
async def test_every_mapped_keyword_stays_fast_and_sends_the_same(
    server: ChaosServer,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    keywords: str,
    stream: bool,
) -> None:
    got = await _both(server, monkeypatch, model, stream=stream, **KEYWORDS[keywords])
    assert got["fast"], "the call left the fast path"
    assert "error" not in got["result"], got["result"]


REFUSED = [
    ("o-series", "top_p"),
    ("o-series", "penalties"),
    ("o-series", "parallel_tool_calls"),
    ("anthropic", "seed"),
]


@pytest.mark.parametrize(("model", "keywords"), REFUSED, ids=[f"{m}-{k}" for m, k in REFUSED])
async def test_a_refused_keyword_is_refused_alike(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch, model: str, keywords: str
) -> None:
    got = await _both(server, monkeypatch, model, stream=False, **KEYWORDS[keywords])
    assert got["result"]["error"] == "InvalidRequestError", got["result"]
    assert got["sent"] == []  # LiteLLM refused it before sending, on both paths


NOT_CARRIED = {
    "reasoning_effort": ("o-series", {"reasoning_effort": "low"}),
    "thinking": ("anthropic", {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    "metadata": ("anthropic", {"metadata": {"user_id": "u-1"}}),
    "extra_headers": ("openai", {"extra_headers": {"x-trace": "1"}}),
}


@pytest.mark.parametrize(("model", "keywords"), NOT_CARRIED.values(), ids=NOT_CARRIED.keys())
async def test_a_keyword_litellm_resolves_itself_goes_through_acompletion(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch, model: str, keywords: dict[str, Any]
) -> None:
    got = await _outcome(server, monkeypatch, model, fast_on=True, stream=False, **keywords)
    assert not got["fast"]
    assert "error" not in got["result"], got["result"]


def _openai_tool_call_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
        }
    ).encode()


def _sse(*events: Any) -> tuple[bytes, ...]:
    frames = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        frames.append(f"data: {data}\n\n".encode())
    return tuple(frames)


def _openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> Any:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


OPENAI_TOOL_STREAM = _sse(
    _openai_chunk({"role": "assistant", "content": None}),
    _openai_chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    _openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Oslo"}'}}]}),
    _openai_chunk({}, "stop"),  # some servers say "stop" after a tool call
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
    },
    "[DONE]",
)


def _anthropic_events(*events: tuple[str, Any]) -> tuple[bytes, ...]:
    return tuple(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


ANTHROPIC_TOOL_STREAM = _anthropic_events(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 20, "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 7},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


@pytest.mark.parametrize("model", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_tool_call_answer_reads_alike(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch, model: str, stream: bool
) -> None:
    if model == "openai":
        reply = RawReply(raw_body=_openai_tool_call_body(), raw_events=OPENAI_TOOL_STREAM)
    else:
        reply = RawReply(
            raw_body=json.dumps(
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5-20250929",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                    ],
                    "stop_reason": "tool_use",
                    "usage": {"input_tokens": 20, "output_tokens": 7},
                }
            ).encode(),
            raw_events=ANTHROPIC_TOOL_STREAM,
        )
    got = await _both(
        server,
        monkeypatch,
        model,
        stream=stream,
        replies=(reply,),
        tools=[WEATHER_TOOL],
    )
    assert got["fast"]
    assert got["result"]["finish_reason"] == "tool_calls", got["result"]
    assert got["result"]["content"] == ""


async def test_a_redirect_is_followed_on_neither_path(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for fast_on in (False, True):
        moved = RawReply(status=307, raw_body=b"", content_type="text/plain")
        got = await _outcome(
            server, monkeypatch, "openai", fast_on=fast_on, stream=False, replies=(moved,)
        )
        assert got["result"].get("status_code") == 307, got["result"]
        assert len(got["sent"]) == 1


@pytest.mark.parametrize("name", ["callbacks", "success_callback", "failure_callback"])
async def test_litellm_callbacks_send_the_call_through_acompletion(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    import litellm

    seen: list[Any] = []

    def callback(*args: Any) -> None:
        seen.append(args)

    monkeypatch.setattr(litellm, name, [callback])
    try:
        got = await _outcome(server, monkeypatch, "openai", fast_on=True, stream=False)
    finally:
        # acompletion copies callbacks into lists of its own, which monkeypatch cannot see;
        # left there, every later call in this process would take the acompletion path.
        litellm.logging_callback_manager.remove_callback_from_all_lists(callback)
    assert not got["fast"]
    assert "error" not in got["result"]


async def test_litellms_own_cache_hook_leaves_the_fast_path_on(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing LiteLLM's Vertex context-caching module (every Gemini call does) registers
    the hook of LiteLLM's response cache as a "cache" callback, with no cache set.
    """
    import litellm
    import litellm.llms.vertex_ai.context_caching.vertex_ai_context_caching

    assert "cache" in litellm.input_callback
    assert litellm.cache is None
    got = await _outcome(server, monkeypatch, "openai", fast_on=True, stream=False)
    assert got["fast"]


async def test_litellms_response_cache_sends_the_call_through_acompletion(
    server: ChaosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import litellm

    monkeypatch.setattr(litellm, "cache", litellm.Cache(type="local"))
    got = await _outcome(server, monkeypatch, "openai", fast_on=True, stream=False)
    assert not got["fast"]
    assert "error" not in got["result"]


@pytest.mark.parametrize(
    ("variable", "value", "on"),
    [
        ("LLM_FAST_TRANSPORT", "0", False),
        ("LLM_FAST_TRANSPORT", "1", True),
        ("LLM_DIRECT_TRANSPORT", "0", False),
        ("LLM_DIRECT_TRANSPORT", "off", False),
    ],
)
def test_the_switch_and_its_former_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, on: bool
) -> None:
    monkeypatch.delenv(fast.ENABLE_ENV, raising=False)
    monkeypatch.delenv(fast.LEGACY_ENABLE_ENV, raising=False)
    monkeypatch.setenv(variable, value)
    assert fast.enabled() is on
