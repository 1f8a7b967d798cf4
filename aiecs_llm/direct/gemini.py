"""Google AI Studio's ``generateContent`` / ``streamGenerateContent?alt=sse``, through LiteLLM's
own Gemini pieces: its URL and key header, its request-body transformation, its answer and
stream-event parsers and its long-decode continuations (a ``CONTINUATION`` answer is followed
up with its ``continuationToken``, up to the output cap), without ``litellm.acompletion``'s
per-call logging, pricing and stream wrapper.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiecs_llm import _litellm
from aiecs_llm.direct.answers import Answer, answer

STREAM_PROVIDER = "vertex_ai_beta"
"""The provider LiteLLM's stream wrapper names when it maps a Gemini stream's errors."""

request = _litellm.gemini_request


def encode(body: Mapping[str, Any], *, stream: bool) -> bytes:
    """The body's bytes as LiteLLM sends them: httpx's compact JSON for a whole answer,
    ``json.dumps`` for a stream (recordings were made of both).
    """
    if stream:
        return json.dumps(body).encode()
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


stream_error_text = _litellm.gemini_stream_error_text


def completion(
    data: Any,
    status: int,
    headers: Mapping[str, str],
    *,
    model: str,
    optional: Mapping[str, Any],
    hops: tuple[dict[str, Any], ...],
) -> Any:
    """LiteLLM's ``ModelResponse`` for the answer and its continuations."""
    return _litellm.gemini_completion(
        data, status, headers, model=model, optional=optional, hops=hops
    )


next_hop = _litellm.gemini_next_hop


class StreamParser:
    """Reads one stream event into a chunk with LiteLLM's per-stream parser (``STOP`` ->
    ``stop``, error events raised as ``VertexAIError``), plans the continuations LiteLLM's
    stream would open, and ends with the usage total LiteLLM's stream wrapper reports.
    """

    def __init__(
        self,
        optional: Mapping[str, Any],
        body: Mapping[str, Any],
        messages: list[dict[str, str]],
    ) -> None:
        self._events = _litellm.gemini_chunk_parser(optional, body)
        self._body = body
        self._messages = messages
        self._counted: list[Any] = []
        """The parser's chunks that carried usage (every Gemini event carries the usage so
        far): the total is computed from them once, at the end."""
        self._texts: list[str] = []
        self._reasoning: list[str] = []
        self._only_text = True
        self._finished = False
        """Some event said why the answer ended."""

    def line(self, text: str) -> Answer | None:
        """One line of the body (``data: {...}``, a blank, a fragment of JSON), as LiteLLM's
        iterator takes it: its parse failures are reported as RuntimeErrors.
        """
        try:
            chunk = self._events._common_chunk_parsing_logic(text)
        except ValueError as exc:
            raise RuntimeError(f"Error parsing chunk: {exc},\nReceived chunk: {text}") from exc
        return self._take(chunk)

    def leftover(self) -> Answer | None:
        """A chunk still held in the accumulated JSON fragments at the end of a response."""
        events = self._events
        while events.chunk_type == "accumulated_json" and events._json_buffer:
            chunk = events.handle_accumulated_json_chunk(chunk="", is_final=True)
            if chunk is None:
                return None
            parsed = self._take(chunk)
            if parsed is not None:
                return parsed
        return None

    def _take(self, chunk: Any) -> Answer | None:
        if chunk is None:
            return None
        if getattr(chunk, "usage", None) is not None:
            self._counted.append(chunk)
        for choice in chunk.choices:
            delta = choice.delta
            if self._only_text and _litellm.carries_more_than_text(delta):
                self._only_text = False
            thought = getattr(delta, "reasoning_content", None)
            if thought:
                self._reasoning.append(thought)
        parsed = _chunk(chunk)
        if parsed is not None:
            first = parsed.choices[0]
            if first.text.content:
                self._texts.append(first.text.content)
            if first.finish_reason:
                self._finished = True
        return parsed

    def total(self) -> Answer | None:
        """The stream's last chunk, as LiteLLM's stream wrapper ends a stream: the usage
        total (when the provider reported one) and, when no event said why the answer ended,
        the finish reason it makes up ("stop"). None when there is neither.
        """
        counted, self._counted = self._counted, []
        reason = None if self._finished else "stop"
        self._finished = True
        if not counted:
            return None if reason is None else answer(model=None, text=None, finish_reason=reason)
        model = counted[-1].model
        usage = _litellm.stream_total_usage(
            counted,
            model=counted[0].model,
            text="".join(self._texts),
            reasoning="".join(self._reasoning) or None,
            only_text=self._only_text,
            messages=self._messages,
        )
        if reason is not None:
            return answer(model=model, text=None, finish_reason=reason, usage=usage)
        return Answer(
            model=model, choices=[], usage=usage, _hidden_params={"provider_response_model": model}
        )

    def continuation(self) -> tuple[str, dict[str, Any]] | None:
        """The planned continuation (token, request body) once the stream has ended, or None."""
        token: str | None = self._events._pending_hop_token
        if token is None:
            return None
        self._events._pending_hop_token = None
        return token, _litellm.gemini_hop_request(self._body, token)

    def continued(self, token: str) -> None:
        """The continuation for ``token`` answered: its events follow."""
        self._events._start_hop(None, token)

    def cut_short(self, token: str) -> Answer | None:
        """The last chunk when the continuation for ``token`` could not be opened."""
        return self._take(self._events._truncated_stream_end(token))

    def unanswered(self, reason: BaseException | None = None) -> Answer | None:
        """The last chunk when a continuation ended (or failed) before its first event."""
        if reason is None:
            return self._take(self._events._end_of_unanswered_hop())
        return self._take(self._events._end_of_unanswered_hop(reason))


def _chunk(chunk: Any) -> Answer | None:
    """A chunk's text and finish reason; its usage goes into the stream's total instead."""
    if chunk is None:
        return None
    choices = chunk.choices
    first = choices[0] if choices else None
    text = first.delta.content if first is not None else None
    reason = first.finish_reason if first is not None else None
    if not text and not reason:
        return None
    return answer(model=chunk.model, text=text, finish_reason=reason)
