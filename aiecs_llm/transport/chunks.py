"""A streamed answer on the fast transport: the body decoded as server-sent events
(``aiecs_llm.transport.sse``), each event's JSON read by the provider's LiteLLM stream parser
into a ``litellm.ModelResponseStream``.

What LiteLLM's stream wrapper (``CustomStreamWrapper``) decides at the end of a stream is
decided here the same way, since it changes the answer: finish reasons are normalised
(``map_finish_reason``; ``stop`` after a tool call is ``tool_calls``); the stream ends with one
chunk carrying the usage total its ``stream_chunk_builder`` computes (``ChunkProcessor``'s
``calculate_usage`` over the chunks that reported usage); a stream whose body ends before any
finish reason fails ("Stream ended before a finish_reason was received"), and a connection
lost after the finish reason ends the stream rather than failing it.
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
# Delta fields besides the text: with any of them in a stream, LiteLLM's stream builder counts
# reasoning tokens from the assembled message; with none, it reports 0.
_BEYOND_TEXT = (
    "tool_calls",
    "function_call",
    "reasoning_content",
    "reasoning_items",
    "thinking_blocks",
    "annotations",
    "audio",
    "images",
    "provider_specific_fields",
    "refusal",
)


def _field(model: Any, name: str) -> Any:
    """``getattr(model, name, None)``, ~20x cheaper for LiteLLM's chunk, choice and delta
    models: they keep most values as pydantic extras, which ``getattr`` finds only after a
    failed lookup (and an exception when the field is absent).
    """
    extra = getattr(model, "__pydantic_extra__", None)
    if extra and name in extra:
        return extra[name]
    attributes = getattr(model, "__dict__", None)
    if attributes is not None and name in attributes:
        return attributes[name]
    if extra is not None and not hasattr(type(model), name):
        return None  # a model with extras, and neither a field nor an extra of that name
    return getattr(model, name, None)  # a property, a class default, another kind of object


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
        messages: list[Any],
        stream_error: Callable[[Any], bool] | None = None,
        error_class: Callable[[str, int], BaseException] | None = None,
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
        self._messages = messages
        self._stream_error = stream_error
        self._error_class = error_class
        self.chunks: list[Any] = []
        """Every chunk the parser gave, as LiteLLM's stream wrapper keeps them (what the
        reader checks its usage against)."""
        self._counted: list[Any] = []
        """The chunks that carried usage."""
        self._text: list[str] = []
        self._beyond_text = False
        self._ended = False
        self._closing: deque[Any] = deque()
        """What comes after the body ended: a held-back chunk, the usage total."""
        self._unfinished = False
        """The body ended before any finish reason: the next read fails."""

    def __aiter__(self) -> ConfigChunkStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._closing:
            return self._closing.popleft()
        while not self._ended:
            if not self._events and not await self._read():
                return await self._end()
            event = self._events.popleft()
            if event.data.startswith(_DONE):
                return await self._end()
            try:
                chunk = self._parsed(event.data)
            except Exception as exc:  # the parser's own error class or a malformed event
                raise self._mapped(exc) from exc
            # A chunk that says nothing (a role, a block opening or closing, a ping) is kept
            # for the usage total but not handed on: the reader would only skip it.
            if chunk is not None and self._kept(chunk):
                return chunk
        if self._unfinished:
            self._unfinished = False
            lost = httpx.RemoteProtocolError(
                "Stream ended before a finish_reason was received", request=self._response.request
            )
            raise self._mapped(lost) from lost
        raise StopAsyncIteration

    def _parsed(self, text: str) -> Any:
        """The parser's chunk for one event's JSON; an error report raises."""
        data = json.loads(text)
        if self._stream_error is not None and isinstance(data, dict) and self._stream_error(data):
            # As for an HTTP error answer: the provider's exception class, the event its body.
            assert self._error_class is not None
            raise self._error_class(text, 500)
        return self._parser.chunk_parser(data)

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
        """The body is over: the chunk the parser held back and the usage total, if any,
        then the end (or the failure of a stream that never said it finished).
        """
        self._ended = True
        held = self._stream_end(self._parser) if self._stream_end is not None else None
        await self._response.aclose()
        if held is not None:
            self._kept(held)
            self._closing.append(held)
        total = self._usage_total()
        if total is not None:
            self._closing.append(total)
        self._unfinished = not self._finished
        return await self.__anext__()

    def _kept(self, chunk: Any) -> bool:
        """Take ``chunk`` into the stream's account, its finish reason normalised; whether it
        says anything (text, a finish reason, usage, anything besides text).
        """
        self.chunks.append(chunk)
        says = _field(chunk, "usage") is not None
        if says:
            self._counted.append(chunk)
        for choice in _field(chunk, "choices") or ():
            delta = _field(choice, "delta")
            if delta is not None:
                text = _field(delta, "content")
                if isinstance(text, str) and text:
                    self._text.append(text)
                    says = True
                if _field(delta, "tool_calls"):
                    self._tool_call = True
                if any(_field(delta, name) for name in _BEYOND_TEXT):
                    self._beyond_text = says = True
            reason = _field(choice, "finish_reason")
            if reason:
                self._finished = says = True
                reason = self._map_finish_reason(reason)
                if reason == "stop" and self._tool_call:
                    reason = "tool_calls"
                choice.finish_reason = reason
        return says

    def _usage_total(self) -> Any:
        """The last chunk LiteLLM's stream wrapper sends: the usage its stream builder totals
        over the chunks that reported usage (None when none did).
        """
        counted = self._counted
        if not counted:
            return None
        import litellm
        from litellm.litellm_core_utils.streaming_chunk_builder_utils import ChunkProcessor

        model = getattr(self.chunks[0], "model", None)
        if self._beyond_text:  # reasoning counted from the assembled message: the whole builder
            built = litellm.stream_chunk_builder(chunks=list(self.chunks), messages=self._messages)
            usage = getattr(built, "usage", None)
        else:
            usage = ChunkProcessor(counted, self._messages).calculate_usage(
                chunks=counted,
                model=model,
                completion_output="".join(self._text),
                messages=self._messages,
                reasoning_tokens=0,
            )
        if usage is None:
            return None
        total = litellm.ModelResponseStream(choices=[], model=model)
        total.usage = usage
        return total
