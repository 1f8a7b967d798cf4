"""Gemini calls over the direct transport's session, as LiteLLM's Gemini handler makes them.

A whole answer is followed by its long-decode continuations (``collect_hops_async``). A
``streamGenerateContent?alt=sse`` stream is read as LiteLLM's ``ModelResponseIterator`` reads
it (``_anext_chunk``): the body split into lines as its SSE splitter splits them, every line
through its parser (a line that is not JSON starts its accumulation of fragments), and at the
end, in its order: the accumulated fragments, a continuation that ended unanswered, the next
continuation. Then the last chunk its stream wrapper adds (usage total, made-up "stop").
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp

from aiecs_llm.direct import gemini
from aiecs_llm.direct.answers import Answer
from aiecs_llm.direct.http import Failures, read_body, request_failures
from aiecs_llm.providers import engine as _litellm


async def send(
    session: aiohttp.ClientSession,
    fail: Failures,
    *,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    optional: Mapping[str, Any],
    messages: list[dict[str, str]],
    model: str,
    stream: bool,
    timeout: float,
) -> Any:
    """LiteLLM's ``ModelResponse`` or, for a stream, a ``GeminiChunkStream``; failures raise
    the exception ``litellm.acompletion`` would have raised (``fail`` names the provider its
    mapping uses: "gemini", or "vertex_ai_beta" for streams, as LiteLLM's stream wrapper maps).
    """
    async with request_failures(session, fail, timeout):
        response = await session.post(url, data=gemini.encode(body, stream=stream), headers=headers)
        if response.status >= 400:
            raw = await read_body(response)
            text = gemini.stream_error_text(raw) if stream else raw.decode("utf-8", "replace")
            raise fail.http(response.status, text, response.headers)
        if stream:
            parse = gemini.StreamParser(optional, body, messages)
            return GeminiChunkStream(
                response,
                parse,
                fail,
                session=session,
                url=url,
                headers=headers,
                timeout=timeout,
            )
        raw = await read_body(response)
        status, answer_headers = response.status, response.headers
        try:
            first = _litellm.gemini_parsed(raw, status, answer_headers)
            hops = await _continuations(session, url, headers, body, first)
            return gemini.completion(
                first, status, answer_headers, model=model, optional=optional, hops=hops
            )
        # LiteLLM's VertexAIError (an unreadable answer) or a parser failure: mapped by
        # LiteLLM's exception_type and chained, as litellm.acompletion does.
        except Exception as exc:
            raise fail.mapped(exc) from exc


async def _continuations(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    first: dict[str, Any],
) -> tuple[dict[str, Any], ...]:
    """The long-decode continuations LiteLLM fetches after ``first``. As in LiteLLM, one that
    fails ends the answer with what came so far (and LiteLLM's warning). The call's time limit
    covers them all, where LiteLLM limits each request.
    """
    hops: tuple[dict[str, Any], ...] = ()
    while (hop := gemini.next_hop(body, (first, *hops))) is not None:
        try:
            response = await session.post(
                url, data=gemini.encode(hop, stream=False), headers=headers
            )
            raw = await read_body(response)
            if response.status >= 400:
                _litellm.gemini_hop_failed(f"the continuation failed with HTTP {response.status}")
                break
            hops = (*hops, _litellm.gemini_parsed(raw, response.status, response.headers))
        # LiteLLM's HOP_FAILURES: no answer, its parse error (VertexAIError).
        except (aiohttp.ClientError, _litellm.gemini_hop_errors()) as exc:
            _litellm.gemini_hop_failed(exc)
            break
    return hops


class GeminiChunkStream:
    """The chunks of one Gemini stream and of its continuations."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        parse: gemini.StreamParser,
        fail: Failures,
        *,
        session: aiohttp.ClientSession,
        url: str,
        headers: dict[str, str],
        timeout: float,
    ) -> None:
        self._response = response
        self._lines: AsyncGenerator[str, None] | None = _lines(response)
        self._parse = parse
        self._fail = fail
        self._session = session
        self._url = url
        self._headers = headers
        self._timeout = timeout
        self._failed: Answer | None = None
        """The last chunk of a continuation that failed before its first event."""

    def __aiter__(self) -> GeminiChunkStream:
        return self

    async def __anext__(self) -> Answer:
        while True:
            if self._lines is None:
                return await self._after_the_end()
            try:
                line = await anext(self._lines)
            except StopAsyncIteration:
                self._drop_response()
                continue
            except aiohttp.ClientError as exc:
                self._quiet_end_or_raise(exc, self._fail.connection(exc))
                continue
            # aiohttp's reader raises RuntimeError("Connection closed.") when the client is
            # closed under a stream.
            except RuntimeError as exc:
                raise self._fail.connection(exc) from exc
            try:
                parsed = self._parse.line(line)
            except _litellm.gemini_hop_errors() as exc:
                self._quiet_end_or_raise(exc, self._fail.mapped(exc))
                continue
            # Mapped and chained, as LiteLLM's stream wrapper maps whatever its parser raises.
            except Exception as exc:
                raise self._fail.mapped(exc) from exc
            if parsed is not None:
                return parsed

    async def aclose(self) -> None:
        """Release the connection (back to the pool when the stream was read to the end)."""
        lines, self._lines = self._lines, None
        if lines is not None:
            await lines.aclose()
        self._response.release()

    def _drop_response(self) -> None:
        self._lines = None
        self._response.release()

    def _quiet_end_or_raise(self, exc: BaseException, mapped: BaseException) -> None:
        # LiteLLM's iterator ends the stream with a "length" chunk when a continuation fails
        # before its first event; any other failure is the call's error.
        self._failed = self._parse.unanswered(exc)
        if self._failed is None:
            raise mapped from exc
        self._drop_response()

    async def _after_the_end(self) -> Answer:
        last = self._held_back()
        if last is not None:
            return last
        planned = self._parse.continuation()
        if planned is None:
            total = self._parse.total()
            if total is None:
                raise StopAsyncIteration
            return total
        token, hop = planned
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._session.post(
                    self._url, data=gemini.encode(hop, stream=True), headers=self._headers
                )
        # LiteLLM's continuation failures (HOP_FAILURES): a timeout, no answer, an HTTP error.
        except (TimeoutError, aiohttp.ClientError) as exc:
            _litellm.gemini_hop_failed(exc)
            return self._cut_short(token)
        if response.status >= 400:
            response.release()
            _litellm.gemini_hop_failed(f"the continuation failed with HTTP {response.status}")
            return self._cut_short(token)
        self._parse.continued(token)
        self._response, self._lines = response, _lines(response)
        return await self.__anext__()

    def _held_back(self) -> Answer | None:
        """A chunk due before any continuation: a failed continuation's last chunk, a chunk
        left in the accumulated fragments, or an unanswered continuation's last chunk.
        """
        failed, self._failed = self._failed, None
        if failed is not None:
            return failed
        try:
            leftover = self._parse.leftover()
        except Exception as exc:
            raise self._fail.mapped(exc) from exc
        return leftover if leftover is not None else self._parse.unanswered()

    def _cut_short(self, token: str) -> Answer:
        end = self._parse.cut_short(token)
        assert end is not None, "LiteLLM's cut-short chunk carries a finish reason"
        return end


async def _lines(response: aiohttp.ClientResponse) -> AsyncGenerator[str, None]:
    """The body's lines as LiteLLM reads them: ``aiter_sse_lines(response.aiter_text())``
    (UTF-8, undecodable bytes replaced, lines ended by CRLF, LF or CR).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    splitter: Any = _litellm.sse_line_splitter()
    async for data in response.content.iter_any():
        for line in splitter.feed(decoder.decode(data)):
            yield line
    for line in splitter.feed(decoder.decode(b"", final=True)):
        yield line
    for line in splitter.flush():
        yield line
