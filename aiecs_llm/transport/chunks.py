"""A streamed answer on the fast transport: the body decoded as server-sent events
(``aiecs_llm.transport.sse``), each event's JSON read by the provider's LiteLLM stream parser
into a ``litellm.ModelResponseStream``.

What LiteLLM's stream wrapper (``CustomStreamWrapper``) decides at the end of a stream is
decided here the same way, since it changes the answer: finish reasons are normalised
(``map_finish_reason``; ``stop`` after a tool call is ``tool_calls``), a stream whose body ends
before any finish reason fails ("Stream ended before a finish_reason was received"), and a
connection lost after the finish reason ends the stream rather than failing it.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from aiecs_llm.transport.base import StreamChunk
from aiecs_llm.transport.sse import Event, SSEDecoder

_DONE = "[DONE]"


class ConfigChunkStream:
    """The chunks of one streamed answer, read as they arrive."""

    def __init__(
        self,
        response: httpx.Response,
        parser: Any,
        *,
        stream_end: Callable[[Any], Any] | None,
        map_finish_reason: Callable[[str], str],
        mapped: Callable[[BaseException], BaseException],
    ) -> None:
        self._response = response
        self._body: AsyncIterator[bytes] = response.aiter_bytes()
        self._decoder = SSEDecoder()
        self._events: deque[Event] = deque()
        self._parser = parser
        self._stream_end = stream_end
        self._map_finish_reason = map_finish_reason
        self._mapped = mapped
        """LiteLLM's exception for what broke the stream (its ``exception_type``)."""
        self._finished = False
        """A chunk carried a finish reason."""
        self._tool_call = False
        self._ended = False
        self._unfinished = False
        """The body ended before any finish reason: the next read fails."""

    def __aiter__(self) -> ConfigChunkStream:
        return self

    async def __anext__(self) -> StreamChunk:
        while not self._ended:
            if not self._events and not await self._read():
                return await self._end()
            event = self._events.popleft()
            if event.data.startswith(_DONE):
                return await self._end()
            try:
                chunk = self._parser.chunk_parser(json.loads(event.data))
            except Exception as exc:  # the parser's own error class or a malformed event
                raise self._mapped(exc) from exc
            if chunk is not None:
                return self._normalised(chunk)
        if self._unfinished:
            self._unfinished = False
            lost = httpx.RemoteProtocolError(
                "Stream ended before a finish_reason was received", request=self._response.request
            )
            raise self._mapped(lost) from lost
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Release the connection (back to the pool when the body was read to its end)."""
        self._ended = True
        self._unfinished = False
        await self._response.aclose()

    async def _read(self) -> bool:
        """Decode the next part of the body; False at its end."""
        while not self._events:
            try:
                data = await anext(self._body)
            except StopAsyncIteration:
                return False
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                if self._finished:  # the answer was complete; only its trailer was lost
                    return False
                raise self._mapped(exc) from exc
            except httpx.HTTPError as exc:  # a read timeout, the client closed under it
                raise self._mapped(exc) from exc
            self._events.extend(self._decoder.feed(data))
        return True

    async def _end(self) -> StreamChunk:
        """The body is over: the chunk the parser held back, if any, then the end (or the
        failure of a stream that never said it finished).
        """
        self._ended = True
        held = self._stream_end(self._parser) if self._stream_end is not None else None
        await self._response.aclose()
        if held is not None:
            held = self._normalised(held)
        self._unfinished = not self._finished
        if held is not None:
            return held
        return await self.__anext__()

    def _normalised(self, chunk: Any) -> Any:
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            if getattr(delta, "tool_calls", None):
                self._tool_call = True
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self._finished = True
                reason = self._map_finish_reason(reason)
                if reason == "stop" and self._tool_call:
                    reason = "tool_calls"
                choice.finish_reason = reason
        return chunk
