"""One shared aiohttp session per client, sending the request LiteLLM would send and reading the
answer without LiteLLM's per-call machinery.

What LiteLLM still does on this path: map the parameters (``get_optional_params``, memoised),
classify HTTP errors (the provider's ``get_error_class`` and ``exception_type``), normalise
finish reasons and hold the prices (``aiecs_llm.accounting.pricing`` prices the usage with
``litellm.cost_per_token``). What it no longer does: build a logging object per call, price
every call (and a stream four times) on its logging threads, build pydantic objects per chunk
and rebuild the whole response at the end of a stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import aiohttp

from aiecs_llm.direct import anthropic, gemini, gemini_transport, openai
from aiecs_llm.direct.answers import Answer
from aiecs_llm.direct.http import Failures, read_body, request_failures
from aiecs_llm.providers import engine as _litellm

if TYPE_CHECKING:
    from aiecs_llm.client.request import PreparedCall

# LiteLLM provider -> wire format (aiecs_llm.direct.PROVIDERS lists the same names).
CODECS: dict[str, ModuleType] = {"openai": openai, "anthropic": anthropic, "gemini": gemini}
_MAPPED_PARAMETERS = ("temperature", "max_tokens", "stream", "stream_options")
_DATA = b"data:"
_DONE = b"[DONE]"


class Transport:
    """Sends calls over one aiohttp session per event loop."""

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._closed = False

    async def send(self, call: PreparedCall, *, timeout: float) -> Any:
        """The answer (``Answer``) or, for ``stream=True``, an async iterator of chunks;
        failures raise the exception ``litellm.acompletion`` would have raised.
        """
        params = call.params
        provider = call.litellm_provider
        codec = CODECS[provider]
        model = params["model"].split("/", 1)[1] if "/" in params["model"] else params["model"]
        optional = _litellm.optional_params(
            model, provider, **{name: params.get(name) for name in _MAPPED_PARAMETERS}
        )
        url, headers, body = codec.request(
            model=model,
            messages=params["messages"],
            optional=optional,
            key=params["api_key"],
            base_url=params.get("api_base"),
        )
        stream = bool(params.get("stream"))
        if codec is gemini:
            fail = Failures(gemini.STREAM_PROVIDER if stream else "gemini", model)
            if self._closed:
                raise fail.connection(RuntimeError("the client was closed"))
            return await gemini_transport.send(
                self._session(),
                fail,
                url=url,
                headers=headers,
                body=body,
                optional=optional,
                messages=params["messages"],
                model=model,
                stream=stream,
                timeout=timeout,
            )
        fail = Failures(provider, model)
        if self._closed:  # a retry of a call that was in flight when the client was closed
            raise fail.connection(RuntimeError("the client was closed"))
        session = self._session()
        async with request_failures(session, fail, timeout):
            response = await session.post(url, data=json.dumps(body).encode(), headers=headers)
            if response.status >= 400:
                text = (await read_body(response)).decode("utf-8", "replace")
                raise fail.http(response.status, text, response.headers)
            if not stream:
                raw = await read_body(response)
                try:
                    return codec.completion(json.loads(raw), response.status, response.headers)
                # A malformed answer (JSON, shape) or the parser's own error class: mapped by
                # LiteLLM's exception_type and chained, exactly as litellm.acompletion does.
                except Exception as exc:
                    raise fail.mapped(exc) from exc
        return ChunkStream(response, codec.stream_parser(provider, model), fail)

    async def close(self) -> None:
        """Close the sessions opened so far; later sends fail as connection errors."""
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # No per-host limit: the client's own concurrency limits already apply.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=connector, trust_env=True)
            self._sessions[loop] = session
        return session


class ChunkStream:
    """The chunks of a server-sent-event stream, one ``Answer`` per event with content."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        parse: Callable[[Any], Answer | None],
        fail: Failures,
    ) -> None:
        self._response = response
        self._parse = parse
        self._fail = fail

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> Answer:
        content = self._response.content
        while True:
            try:
                line = await content.readline()
            # aiohttp's reader raises RuntimeError("Connection closed.") when the client is
            # closed under a stream; a lost connection is a ClientError.
            except (aiohttp.ClientError, RuntimeError) as exc:
                raise self._fail.connection(exc) from exc
            if not line:
                raise StopAsyncIteration
            if not line.startswith(_DATA):
                continue  # blank separators, "event:" names, ": keep-alive" comments
            payload = line[len(_DATA) :].strip()
            if payload == _DONE:
                raise StopAsyncIteration
            try:
                parsed = self._parse(json.loads(payload))
            # Mapped and chained, as LiteLLM's stream wrapper maps whatever its parser raises.
            except Exception as exc:
                raise self._fail.mapped(exc) from exc
            if parsed is not None:
                return parsed

    async def aclose(self) -> None:
        """Release the connection (back to the pool when the stream was read to the end)."""
        self._response.release()
