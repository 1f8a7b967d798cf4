"""Google AI Studio's ``generateContent`` / ``streamGenerateContent?alt=sse``, through LiteLLM's
own Gemini pieces: its URL and key header, its request-body transformation, its answer and
stream-event parsers and its long-decode continuations (a ``CONTINUATION`` answer is followed
up with its ``continuationToken``, up to the output cap), without ``litellm.acompletion``'s
per-call logging, pricing and stream wrapper.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aiecs_llm.direct.answers import Answer, answer
from aiecs_llm.providers import engine as _litellm

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
        far), and the plain events whose usage is computed only at the end (dicts): the
        total is computed from them once, at the end."""
        self._texts: list[str] = []
        self._reasoning: list[str] = []
        self._only_text = True
        self._finished = False
        """Some event said why the answer ended."""

    def line(self, text: str) -> Answer | None:
        """One line of the body (``data: {...}``, a blank, a fragment of JSON), as LiteLLM's
        iterator takes it: its parse failures are reported as RuntimeErrors.
        """
        plain = self._plain(text)
        if plain is not None:
            return plain
        try:
            chunk = self._events._common_chunk_parsing_logic(text)
        except ValueError as exc:
            raise RuntimeError(f"Error parsing chunk: {exc},\nReceived chunk: {text}") from exc
        return self._take(chunk)

    def _plain(self, text: str) -> Answer | None:
        """The chunk of a plain text event (one candidate, one text part, no finish reason or
        ``STOP``, well-formed counts), read with dict lookups: LiteLLM's parser would build a
        whole response and a usage object from it, about 0.1 ms per event, when only the text,
        the finish reason and the last usage count. None for anything else (blanks, fragments,
        errors, other parts or reasons, continuations), which LiteLLM's parser then reads.
        """
        events = self._events
        if not _litellm.gemini_parser_is_fresh(events):
            return None
        data = _litellm.sse_data(text)
        if not data:
            return None
        try:
            event = json.loads(data.strip())
        # Not JSON (a fragment): LiteLLM's parser starts accumulating, or raises, as before.
        except (ValueError, RecursionError):
            return None
        reading = _plain_text(event)
        if reading is None:
            return None
        content, finish = reading
        # LiteLLM gives every text chunk a finish reason ("stop" without one from Gemini).
        reason: str | None = _litellm.gemini_finish_reason(finish)
        event = _litellm.gemini_took_plain_event(events, event)
        if "usageMetadata" in event:
            self._counted.append(event)
        self._texts.append(content)
        if reason:
            self._finished = True
        return answer(model=_served(event.get("modelVersion")), text=content, finish_reason=reason)

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
        counted = self._usage_chunks()
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

    def _usage_chunks(self) -> list[Any]:
        """The chunks LiteLLM's stream wrapper would total usage over, in order: the parser's,
        and those LiteLLM would have made of the plain events. Plain events before the last
        one are left out when its usage decides every figure they could (Gemini repeats the
        usage so far in each event); otherwise all are computed, as before.
        """
        entries, self._counted = self._counted, []
        plain = [index for index, entry in enumerate(entries) if isinstance(entry, dict)]
        if not plain:
            return entries
        last = _litellm.gemini_usage_chunk(self._events, entries[plain[-1]])
        earlier = [entries[index] for index in plain[:-1]]
        skip = _litellm.gemini_usage_supersedes(last, earlier)
        chunks: list[Any] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                chunks.append(entry)
            elif index == plain[-1]:
                chunks.append(last)
            elif not skip:
                chunks.append(_litellm.gemini_usage_chunk(self._events, entry))
        return chunks

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


_PLAIN_KEYS: Final = frozenset({"candidates", "usageMetadata", "modelVersion", "responseId"})
_PLAIN_CANDIDATE_KEYS: Final = frozenset({"content", "finishReason", "index"})
_PLAIN_CONTENT_KEYS: Final = frozenset({"parts", "role"})
_PLAIN_COUNTS: Final = frozenset(
    {
        "promptTokenCount",
        "candidatesTokenCount",
        "totalTokenCount",
        "thoughtsTokenCount",
        "cachedContentTokenCount",
    }
)
_PLAIN_DETAILS: Final = frozenset(
    {"promptTokensDetails", "candidatesTokensDetails", "cacheTokensDetails"}
)


def _plain_text(event: object) -> tuple[str, str | None] | None:
    """(text, ``finishReason``) of a plain text event, or None when the event is anything else.
    Its usage must be counts LiteLLM's usage calculation reads without failing, since it runs
    only at the end of the stream (where a failure would come later than on LiteLLM's path).
    """
    candidate = _only_candidate(event)
    if candidate is None or type(event) is not dict:
        return None
    text = _only_text(candidate.get("content"))
    if text is None or not _plain_usage(event.get("usageMetadata", {})):
        return None
    finish: str | None = candidate.get("finishReason")
    return text, finish


def _only_candidate(event: object) -> dict[str, Any] | None:
    """The event's one candidate (index 0, no finish reason or ``STOP``, nothing but its
    content besides), when the event holds nothing LiteLLM reads beyond it.
    """
    if type(event) is not dict or not event.keys() <= _PLAIN_KEYS:
        return None
    model = event.get("modelVersion")
    candidates = event.get("candidates")
    if (model is not None and type(model) is not str) or type(candidates) is not list:
        return None
    candidate = candidates[0] if len(candidates) == 1 else None
    if type(candidate) is not dict or not candidate.keys() <= _PLAIN_CANDIDATE_KEYS:
        return None
    index = candidate.get("index", 0)
    if type(index) is not int or index != 0 or candidate.get("finishReason") not in (None, "STOP"):
        return None
    return candidate


def _only_text(content: object) -> str | None:
    """The text of a model content of one non-empty text part, else None."""
    if type(content) is not dict or not content.keys() <= _PLAIN_CONTENT_KEYS:
        return None
    parts = content.get("parts")
    if content.get("role", "model") != "model" or type(parts) is not list or len(parts) != 1:
        return None
    part = parts[0]
    text = part.get("text") if type(part) is dict and part.keys() == {"text"} else None
    return text if type(text) is str and text else None


def _plain_usage(usage: object) -> bool:
    """Whether ``usageMetadata`` holds only whole counts and modality breakdowns."""
    if type(usage) is not dict:
        return False
    for name, value in usage.items():
        if name in _PLAIN_COUNTS:
            if type(value) is not int:
                return False
        elif name not in _PLAIN_DETAILS or not _plain_details(value):
            return False
    return True


def _plain_details(details: object) -> bool:
    """Whether a modality breakdown is a list of ``{"modality": str, "tokenCount": int}``."""
    return type(details) is list and all(
        type(detail) is dict
        and detail.keys() <= {"modality", "tokenCount"}
        and type(detail.get("modality", "")) is str
        and type(detail.get("tokenCount", 0)) is int
        for detail in details
    )


def _served(model_version: object) -> str | None:
    """The model name LiteLLM reports for an event's ``modelVersion``."""
    name: str | None = _litellm.gemini_served_model_name()(model_version)
    return name
