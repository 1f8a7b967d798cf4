"""The providers' official SDKs as bench clients, next to ``OpenAISdkClient`` in clients.py:
``anthropic``'s ``AsyncAnthropic`` and ``google-genai``'s ``Client(...).aio``, each pointed at
the bench server with its base-URL option, retries off, used as its documentation shows.

Each sends what the aiecs_llm client of its wire format sends (one user message, ``max_tokens``
64) and reads the text and the usage of the answer; a stream counts its content chunks, notes
when the first arrived and reads the usage its events carry. Both SDKs come with the ``bench``
extra (``pip install -e '.[bench]'``); they are imported when a client is made, not before.
"""

from __future__ import annotations

import time
from typing import Any

from request import (
    ANTHROPIC_MODEL,
    API_KEY,
    GEMINI_MODEL,
    MAX_TOKENS,
    MESSAGES,
    PROMPT,
    BadAnswerError,
    StreamOutcome,
)


def _check(*, text: bool, output_tokens: object) -> None:
    if not text:
        raise BadAnswerError("the answer has no text")
    if not isinstance(output_tokens, int) or output_tokens <= 0:
        raise BadAnswerError("the answer has no usage")


class AnthropicSdkClient:
    """The anthropic SDK's ``AsyncAnthropic`` (``/v1/messages``), retries off. Streams are read
    as the raw events of ``messages.create(..., stream=True)`` (the SDK's lightest stream, as
    ``OpenAISdkClient`` reads raw chunks), not through the accumulating ``messages.stream()``
    helper.
    """

    def __init__(self, base_url: str) -> None:
        import anthropic

        self.client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=base_url, max_retries=0)
        # The SDK types messages as TypedDicts; the plain dicts sent are the same JSON.
        self.messages: Any = MESSAGES

    async def plain(self) -> None:
        message = await self.client.messages.create(
            model=ANTHROPIC_MODEL, messages=self.messages, max_tokens=MAX_TOKENS
        )
        block = message.content[0] if message.content else None
        text = block.text if block is not None and block.type == "text" else None
        _check(text=bool(text), output_tokens=message.usage.output_tokens)

    async def stream(self) -> StreamOutcome:
        chunks, first, output_tokens = 0, None, None
        stream = await self.client.messages.create(
            model=ANTHROPIC_MODEL, messages=self.messages, max_tokens=MAX_TOKENS, stream=True
        )
        async for event in stream:
            if event.type == "content_block_delta":
                if event.delta.type == "text_delta" and event.delta.text:
                    if first is None:
                        first = time.perf_counter()
                    chunks += 1
            elif event.type == "message_delta":
                output_tokens = event.usage.output_tokens
        _check(text=chunks > 0, output_tokens=output_tokens)
        return chunks, first

    async def close(self) -> None:
        await self.client.close()


class GenaiSdkClient:
    """google-genai's ``Client(...).aio`` on the Gemini API (AI Studio) path,
    ``/v1beta/models/<model>:generateContent`` and ``:streamGenerateContent?alt=sse``; retries
    off (one attempt, and no implicit retry of connection errors either). The SDK sends with its
    default async HTTP client (aiohttp, installed with aiecs_llm).
    """

    def __init__(self, base_url: str) -> None:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=f"{base_url}/",
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self.client = genai.Client(api_key=API_KEY, http_options=options).aio
        # Built once, as the other clients build their messages once.
        self.contents: Any = [types.Content(role="user", parts=[types.Part(text=PROMPT)])]
        self.config = types.GenerateContentConfig(max_output_tokens=MAX_TOKENS)

    async def plain(self) -> None:
        response = await self.client.models.generate_content(
            model=GEMINI_MODEL, contents=self.contents, config=self.config
        )
        usage = response.usage_metadata
        output_tokens = usage.candidates_token_count if usage else None
        _check(text=bool(response.text), output_tokens=output_tokens)

    async def stream(self) -> StreamOutcome:
        chunks, first, output_tokens = 0, None, None
        stream = await self.client.models.generate_content_stream(
            model=GEMINI_MODEL, contents=self.contents, config=self.config
        )
        async for response in stream:
            if response.text:
                if first is None:
                    first = time.perf_counter()
                chunks += 1
            # Every event carries the usage so far; the last one's is the call's.
            if response.usage_metadata is not None:
                output_tokens = response.usage_metadata.candidates_token_count
        _check(text=chunks > 0, output_tokens=output_tokens)
        return chunks, first

    async def close(self) -> None:
        await self.client.aclose()
