"""The streamed call, from the cache lookup to the last chunk.

An attempt lasts until the first text chunk: until the caller has seen text, nothing is lost by
starting again, so retries and fallbacks cover errors that arrive only with the first chunk.
After that, a stream that breaks or goes silent raises ``StreamInterruptedError`` with the text
received so far. Either way the call is accounted once, as a plain call is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from aiecs_llm.accounting.cache import ResponseCache, mark_cached
from aiecs_llm.client.booking import CallBook
from aiecs_llm.client.cache_keys import CacheKeys
from aiecs_llm.client.pipeline import Pipeline, out_of_time
from aiecs_llm.client.reading import StreamReading
from aiecs_llm.client.shutdown import InFlight
from aiecs_llm.client.text_stream import TextStream
from aiecs_llm.errors import StreamInterruptedError
from aiecs_llm.transport.call import CallRequest, PreparedCall


class StreamPath:
    """Streams one client's calls.

    Args:
        pipeline: routes the call and sends its attempts.
        book: reserves the call's budget and books how it ended.
        cache: the response cache, or None.
        cache_keys: the call's cache key.
        in_flight: the client's calls in flight, which ``close()`` ends.
        idle_timeout: seconds a started stream may go silent before it counts as broken.

    """

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        book: CallBook,
        cache: ResponseCache | None,
        cache_keys: CacheKeys,
        in_flight: InFlight,
        idle_timeout: float,
    ) -> None:
        self._pipeline = pipeline
        self._book = book
        self._cache = cache
        self._cache_keys = cache_keys
        self._in_flight = in_flight
        self._idle_timeout = idle_timeout

    async def chunks(self, request: CallRequest, stream: TextStream) -> AsyncGenerator[str, None]:
        """The answer's text as it arrives; ``stream`` gets the response once it has ended."""
        key = self._cache_keys.key(request)
        if key is not None and self._cache is not None:
            entry = await self._cache.get(key)
            if entry is not None:
                for chunk in entry.replay_chunks:
                    yield chunk
                cached = mark_cached(entry.response)
                self._book.cached(request, cached)
                stream._finish(cached)
                return
        reservation = None
        try:
            reservation = await self._book.reserve(request, self._pipeline.chain(request))
            async with self._in_flight.scope():
                answer = await self._pipeline.route(request, self._open)
        except BaseException as error:
            self._book.failed(request, error, reservation)
            raise
        raw, reading, text = answer.value
        call = reading.call
        async with answer.lease:
            try:
                while text is not None:
                    yield text
                    text = None
                    while text is None and (chunk := await self._next_chunk(raw)) is not None:
                        text = reading.add(chunk) or None
                response = reading.finish(answer.fallback_from)
            except Exception as exc:
                interrupted = StreamInterruptedError(
                    f"the stream broke after {len(reading.text)} characters: "
                    f"{call.fail(exc).message}",
                    partial_text=reading.text,
                    provider=call.provider,
                    model=call.model,
                    status_code=getattr(exc, "status_code", None),
                )
                self._book.failed(request, interrupted, reservation)
                raise interrupted from exc
            except BaseException:
                # The consumer stopped early (aclose) or its task was cancelled.
                self._book.failed(request, None, reservation)
                raise
            finally:
                await _close_quietly(raw)
            call.settle(response)
        self._book.succeeded(request, response, reservation)
        if key is not None and self._cache is not None:
            await self._cache.put(key, response, chunks=tuple(reading.parts))
        stream._finish(response)

    async def _open(self, call: PreparedCall) -> tuple[Any, StreamReading, str | None]:
        # The attempt lasts until the first text chunk: provider errors often arrive only
        # there, not with the HTTP response headers. The call's timeout holds until then, even
        # while pings or empty deltas keep the stream from going idle.
        raw = await self._pipeline.send(call)
        reading = StreamReading(call, raw)
        limit = asyncio.timeout(call.deadline - time.monotonic())
        try:
            async with limit:
                while (chunk := await self._next_chunk(raw)) is not None:
                    if text := reading.add(chunk):
                        return raw, reading, text
            reading.finish()
        except Exception as exc:  # the boundary, as in Pipeline.send
            await _close_quietly(raw)
            if limit.expired():
                exc = out_of_time(call, exc)
            raise call.fail(exc) from exc
        return raw, reading, None

    async def _next_chunk(self, raw: Any) -> Any:
        idle = self._idle_timeout
        try:
            async with self._in_flight.scope(idle):
                return await anext(raw, None)
        except TimeoutError:
            raise TimeoutError(f"the stream went silent for {idle:g}s") from None


async def _close_quietly(raw: Any) -> None:
    closer = getattr(raw, "aclose", None)
    if closer is None:
        return
    try:
        await closer()
    except Exception:  # noqa: BLE001 - the stream is done with; nothing to report
        return
