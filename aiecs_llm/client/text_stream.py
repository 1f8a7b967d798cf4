"""``TextStream``: what ``stream_text`` returns.

Iterate it for the text; when it is exhausted, ``response`` holds the same ``LLMResponse`` a plain
call returns (tokens, cost, time to first chunk, total time), so a streamed call is accounted
exactly like one that was not streamed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType
from typing import Self

from typing_extensions import override

from aiecs_llm.types import LLMResponse


class TextStream(AsyncIterator[str]):
    """An async iterator of text chunks, with the final ``LLMResponse`` once it has ended."""

    def __init__(self, source: Callable[[TextStream], AsyncGenerator[str, None]]) -> None:
        self._response: LLMResponse | None = None
        self._parts: list[str] = []
        self._chunks = source(self)

    @override
    def __aiter__(self) -> Self:
        return self

    @override
    async def __anext__(self) -> str:
        chunk = await self._chunks.__anext__()
        self._parts.append(chunk)
        return chunk

    async def aclose(self) -> None:
        """Stop early and release the connection; the call is still accounted."""
        await self._chunks.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def text(self) -> str:
        """Everything yielded so far."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        """Whether the stream ended normally and ``response`` is available."""
        return self._response is not None

    @property
    def response(self) -> LLMResponse:
        """The full response; only after the stream has been read to the end."""
        if self._response is None:
            raise RuntimeError("the stream has not finished: read it to the end first")
        return self._response

    def _finish(self, response: LLMResponse) -> None:
        self._response = response
