"""The clients under test, each behind the same two calls: ``plain()`` and ``stream()``.

Every client sends the same request (model ``gpt-4o-mini``, one user message, ``max_tokens`` 64,
usage requested for streams) and does the least work a real caller would: the raw HTTP clients
decode the JSON answer, or split the SSE lines and decode each chunk; the SDKs and aiecs_llm are
used as their documentation shows. The Anthropic and Gemini clients send the same request on
their wire formats: raw LiteLLM, aiecs_llm, and each provider's official SDK (clients_sdk.py),
as the openai SDK is for OpenAI's. A stream returns how many content chunks it saw and when the
first one arrived (``time.perf_counter()``), for time to first chunk.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from clients_sdk import AnthropicSdkClient, GenaiSdkClient
from request import (
    ANTHROPIC_MODEL,
    API_KEY,
    GEMINI_MODEL,
    MAX_TOKENS,
    MESSAGES,
    MODEL,
    PROMPT,
    BadAnswerError,
    BenchClient,
    StreamOutcome,
)

CLIENTS = (
    "httpx",
    "aiohttp",
    "openai",
    "litellm",
    "aiecs_llm",
    "anthropic_sdk",
    "litellm_anthropic",
    "aiecs_llm_anthropic",
    "genai_sdk",
    "litellm_gemini",
    "aiecs_llm_gemini",
)


def _check(content: object) -> None:
    if not isinstance(content, str) or not content:
        raise BadAnswerError("the answer has no text")


def _check_usage(output_tokens: object) -> None:
    if not isinstance(output_tokens, int) or output_tokens <= 0:
        raise BadAnswerError("the answer has no usage")


def _payload(*, stream: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return payload


class _SseCounter:
    """The minimal SSE work: find ``data:`` lines, decode each chunk, count the content."""

    def __init__(self) -> None:
        self.chunks = 0
        self.first: float | None = None
        self.done = False

    def line(self, line: str) -> None:
        if not line.startswith("data:"):
            return
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return
        chunk = json.loads(data)
        choices = chunk.get("choices")
        if choices and choices[0]["delta"].get("content"):
            if self.first is None:
                self.first = time.perf_counter()
            self.chunks += 1

    def outcome(self) -> StreamOutcome:
        if not self.done:
            raise BadAnswerError("the stream ended without [DONE]")
        return self.chunks, self.first


class HttpxClient:
    """Raw httpx: one ``AsyncClient`` (its pool holds 100 connections, enough for c=64)."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self.url = f"{base_url}/v1/chat/completions"
        self.headers = {"authorization": f"Bearer {API_KEY}"}
        # trust_env off: no proxy variable can send benchmark traffic off this machine.
        self.client = httpx.AsyncClient(timeout=60, trust_env=False)

    async def plain(self) -> None:
        response = await self.client.post(
            self.url, json=_payload(stream=False), headers=self.headers
        )
        if response.status_code != 200:
            raise BadAnswerError(f"HTTP {response.status_code}")
        _check(response.json()["choices"][0]["message"]["content"])

    async def stream(self) -> StreamOutcome:
        counter = _SseCounter()
        request = self.client.stream(
            "POST", self.url, json=_payload(stream=True), headers=self.headers
        )
        async with request as response:
            if response.status_code != 200:
                await response.aread()
                raise BadAnswerError(f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                counter.line(line)
        return counter.outcome()

    async def close(self) -> None:
        await self.client.aclose()


class AiohttpClient:
    """Raw aiohttp: one ``ClientSession`` with a 100-connection pool."""

    def __init__(self, base_url: str) -> None:
        import aiohttp

        self.url = f"{base_url}/v1/chat/completions"
        self.headers = {"authorization": f"Bearer {API_KEY}"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), trust_env=False
        )

    async def plain(self) -> None:
        async with self.session.post(
            self.url, json=_payload(stream=False), headers=self.headers
        ) as response:
            if response.status != 200:
                raise BadAnswerError(f"HTTP {response.status}")
            _check((await response.json())["choices"][0]["message"]["content"])

    async def stream(self) -> StreamOutcome:
        counter = _SseCounter()
        async with self.session.post(
            self.url, json=_payload(stream=True), headers=self.headers
        ) as response:
            if response.status != 200:
                raise BadAnswerError(f"HTTP {response.status}")
            async for raw in response.content:
                counter.line(raw.decode())
        return counter.outcome()

    async def close(self) -> None:
        await self.session.close()


class OpenAISdkClient:
    """The openai SDK's ``AsyncOpenAI``, retries off (as the other clients); it reads the text
    and the usage, as the other official SDKs' clients (clients_sdk.py) do.
    """

    def __init__(self, base_url: str) -> None:
        import openai

        self.client = openai.AsyncOpenAI(api_key=API_KEY, base_url=f"{base_url}/v1", max_retries=0)
        # The SDK types messages as TypedDicts; the plain dicts sent are the same JSON.
        self.messages: Any = MESSAGES

    async def plain(self) -> None:
        completion = await self.client.chat.completions.create(
            model=MODEL,
            messages=self.messages,
            max_tokens=MAX_TOKENS,
        )
        _check(completion.choices[0].message.content)
        _check_usage(completion.usage.completion_tokens if completion.usage else None)

    async def stream(self) -> StreamOutcome:
        chunks, first = 0, None
        stream = await self.client.chat.completions.create(
            model=MODEL,
            messages=self.messages,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        output_tokens = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if first is None:
                    first = time.perf_counter()
                chunks += 1
            if chunk.usage is not None:
                output_tokens = chunk.usage.completion_tokens
        _check_usage(output_tokens)
        return chunks, first

    async def close(self) -> None:
        await self.client.close()


class LiteLLMRawClient:
    """``litellm.acompletion`` as a LiteLLM user calls it: LiteLLM's own client cache, its
    logging and cost calculation, retries off as in the other clients.
    """

    def __init__(self, base_url: str) -> None:
        import litellm

        litellm.suppress_debug_info = True
        self.acompletion = litellm.acompletion
        self.options: dict[str, Any] = {
            "model": f"openai/{MODEL}",
            "messages": MESSAGES,
            "max_tokens": MAX_TOKENS,
            "api_base": f"{base_url}/v1",
            "api_key": API_KEY,
            "max_retries": 0,
        }

    async def plain(self) -> None:
        response = await self.acompletion(**self.options)
        _check(response.choices[0].message.content)

    async def stream(self) -> StreamOutcome:
        chunks, first = 0, None
        response = await self.acompletion(
            **self.options, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                if first is None:
                    first = time.perf_counter()
                chunks += 1
        return chunks, first

    async def close(self) -> None:
        return None


class AiecsClient:
    """aiecs_llm's ``OpenAIClient`` with its defaults (no ledger or budget configured: the
    harness clears ``LLM_*`` variables), retries off.
    """

    def __init__(self, base_url: str) -> None:
        import structlog

        from aiecs_llm import LLMMessage

        # A benchmark process is an application and may choose its logging: events below
        # ERROR are dropped, as a production service that ships only errors would do.
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        self.client = self._make(base_url)
        self.messages = [LLMMessage(role="user", content=PROMPT)]

    model = MODEL

    def _make(self, base_url: str) -> Any:
        from aiecs_llm import OpenAIClient

        return OpenAIClient(api_key=API_KEY, base_url=f"{base_url}/v1", max_retries=0)

    async def plain(self) -> None:
        response = await self.client.generate_text(
            self.messages, model=self.model, max_tokens=MAX_TOKENS
        )
        _check(response.content)
        _not_cached(response.cached)

    async def stream(self) -> StreamOutcome:
        chunks, first = 0, None
        stream = self.client.stream_text(self.messages, model=self.model, max_tokens=MAX_TOKENS)
        async for text in stream:
            if text:
                if first is None:
                    first = time.perf_counter()
                chunks += 1
        _not_cached(stream.response.cached)
        return chunks, first

    async def close(self) -> None:
        await self.client.close()


def _not_cached(cached: bool) -> None:
    # The response cache takes only temperature=0 calls by default and these use the default
    # temperature; an answer from the cache would measure a dictionary lookup, not a call.
    if cached:
        raise BadAnswerError("served from aiecs_llm's response cache")


class LiteLLMAnthropicClient(LiteLLMRawClient):
    """Raw ``litellm.acompletion`` on its Anthropic path (the bench server's /v1/messages)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.options.update(model=f"anthropic/{ANTHROPIC_MODEL}", api_base=base_url)


class AiecsAnthropicClient(AiecsClient):
    """aiecs_llm's ``AnthropicClient``, as ``AiecsClient`` (the bench server's /v1/messages)."""

    model = ANTHROPIC_MODEL

    def _make(self, base_url: str) -> Any:
        from aiecs_llm import AnthropicClient

        return AnthropicClient(api_key=API_KEY, base_url=base_url, max_retries=0)


class LiteLLMGeminiClient(LiteLLMRawClient):
    """Raw ``litellm.acompletion`` on its Gemini (AI Studio) path (the bench server's
    /v1beta/models/<model>:generateContent and :streamGenerateContent).
    """

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.options.update(model=f"gemini/{GEMINI_MODEL}", api_base=f"{base_url}/v1beta")


class AiecsGeminiClient(AiecsClient):
    """aiecs_llm's ``GoogleAIClient``, as ``AiecsClient`` (the bench server's Gemini paths)."""

    model = GEMINI_MODEL

    def _make(self, base_url: str) -> Any:
        from aiecs_llm import GoogleAIClient

        return GoogleAIClient(api_key=API_KEY, base_url=f"{base_url}/v1beta", max_retries=0)


_FACTORIES: dict[str, Callable[[str], BenchClient]] = {
    "httpx": HttpxClient,
    "aiohttp": AiohttpClient,
    "openai": OpenAISdkClient,
    "anthropic_sdk": AnthropicSdkClient,
    "genai_sdk": GenaiSdkClient,
    "litellm": LiteLLMRawClient,
    "aiecs_llm": AiecsClient,
    "litellm_anthropic": LiteLLMAnthropicClient,
    "aiecs_llm_anthropic": AiecsAnthropicClient,
    "litellm_gemini": LiteLLMGeminiClient,
    "aiecs_llm_gemini": AiecsGeminiClient,
}


def make_client(name: str, base_url: str) -> BenchClient:
    """The client called ``name``, pointed at the bench server at ``base_url``; call it inside
    the running event loop (aiohttp binds its session to the loop).
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown client {name!r}; choose from {', '.join(CLIENTS)}")
    return _FACTORIES[name](base_url)
