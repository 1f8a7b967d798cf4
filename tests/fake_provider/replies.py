"""What the fake provider answers: a scripted `Reply` per request.

A `Reply` says *what happens* (success, an error, a broken connection); the provider inferred
from the request path decides *how it looks on the wire*, so one script drives all three APIs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import format_datetime

DEFAULT_TEXT = "Hello there, how are you?"


class Outcome(enum.Enum):
    """How the server treats the request."""

    OK = "ok"
    ERROR = "error"
    HANG = "hang"
    RESET = "reset"
    MALFORMED_JSON = "malformed_json"
    CUT_STREAM = "cut_stream"


class ErrorKind(enum.Enum):
    """A provider error; each provider renders it with its own status, type and message."""

    INVALID_API_KEY = "invalid_api_key"  # Gemini really answers 400 API_KEY_INVALID, not 401
    PERMISSION_DENIED = "permission_denied"
    MODEL_NOT_FOUND = "model_not_found"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"  # Anthropic really answers 400 "credit balance is too low"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    OVERLOADED = "overloaded"  # 529 is Anthropic's; the others get 529 with a generic body


def format_retry_after(value: str | float | datetime) -> str:
    """Render a retry-after value: seconds as an integer string, a datetime as an HTTP-date."""
    if isinstance(value, datetime):
        return format_datetime(value, usegmt=True)
    if isinstance(value, str):
        return value
    return str(round(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the class methods; `dataclasses.replace` tweaks it."""

    outcome: Outcome = Outcome.OK
    error: ErrorKind | None = None
    text: str = DEFAULT_TEXT
    prompt_tokens: int = 22
    completion_tokens: int = 8
    model: str | None = None  # None: the dated version of the requested model, as real APIs do
    chunks: int = 4  # text deltas in a stream
    delay: float = 0.0  # seconds before the first byte (status line) is sent
    chunk_delay: float = 0.0  # seconds between stream events
    cut_after: int = 0  # CUT_STREAM: SSE events sent before the connection is dropped
    retry_after: str | None = None
    retry_after_ms: int | None = None
    extra_headers: tuple[tuple[str, str], ...] = field(default=())

    # -- success ------------------------------------------------------------------------------

    @classmethod
    def ok(
        cls,
        text: str = DEFAULT_TEXT,
        *,
        prompt_tokens: int = 22,
        completion_tokens: int = 8,
        model: str | None = None,
        chunks: int = 4,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        """A normal answer: JSON, or SSE when the request asked to stream."""
        return cls(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=model,
            chunks=max(1, chunks),
            delay=delay,
            chunk_delay=chunk_delay,
        )

    # -- provider errors ----------------------------------------------------------------------

    @classmethod
    def rate_limited(
        cls,
        retry_after: str | float | datetime | None = None,
        *,
        retry_after_ms: int | None = None,
    ) -> Reply:
        """429; `retry_after` in seconds or as a datetime (sent as an HTTP-date)."""
        return cls._error(ErrorKind.RATE_LIMITED, retry_after, retry_after_ms)

    @classmethod
    def quota_exceeded(cls) -> Reply:
        """Out of credit: OpenAI 429 insufficient_quota, Gemini 429, Anthropic 400."""
        return cls._error(ErrorKind.QUOTA_EXCEEDED)

    @classmethod
    def invalid_api_key(cls) -> Reply:
        """401 (Gemini: 400 INVALID_ARGUMENT with reason API_KEY_INVALID)."""
        return cls._error(ErrorKind.INVALID_API_KEY)

    @classmethod
    def permission_denied(cls) -> Reply:
        """403."""
        return cls._error(ErrorKind.PERMISSION_DENIED)

    @classmethod
    def model_not_found(cls) -> Reply:
        """404 naming the requested model."""
        return cls._error(ErrorKind.MODEL_NOT_FOUND)

    @classmethod
    def context_length_exceeded(cls, prompt_tokens: int = 1_200_000) -> Reply:
        """400 with each provider's real wording; `prompt_tokens` goes into the message."""
        return replace(cls._error(ErrorKind.CONTEXT_LENGTH_EXCEEDED), prompt_tokens=prompt_tokens)

    @classmethod
    def server_error(cls) -> Reply:
        """500."""
        return cls._error(ErrorKind.SERVER_ERROR)

    @classmethod
    def unavailable(cls, retry_after: str | float | datetime | None = None) -> Reply:
        """503 (Anthropic's real 503 is a text/plain body from its edge proxy)."""
        return cls._error(ErrorKind.UNAVAILABLE, retry_after)

    @classmethod
    def overloaded(cls, retry_after: str | float | datetime | None = None) -> Reply:
        """529 overloaded_error (Anthropic)."""
        return cls._error(ErrorKind.OVERLOADED, retry_after)

    # -- transport faults ---------------------------------------------------------------------

    @classmethod
    def hang(cls) -> Reply:
        """Accept the request and never answer, until the server stops."""
        return cls(outcome=Outcome.HANG)

    @classmethod
    def reset_connection(cls) -> Reply:
        """Close the connection without sending a status line."""
        return cls(outcome=Outcome.RESET)

    @classmethod
    def malformed_json(cls) -> Reply:
        """200 whose JSON is cut in half (for a stream: the first event's JSON is)."""
        return cls(outcome=Outcome.MALFORMED_JSON)

    @classmethod
    def cut_stream(
        cls, after_chunks: int = 2, *, text: str = DEFAULT_TEXT, chunks: int = 4
    ) -> Reply:
        """Send the first `after_chunks` SSE events, then drop the connection mid-body.

        Nothing final arrives: no finish reason, no usage, no `[DONE]` / `message_stop`.
        A non-streaming request gets half of its JSON body before the drop.
        """
        return cls(
            outcome=Outcome.CUT_STREAM, text=text, chunks=max(1, chunks), cut_after=after_chunks
        )

    # -- helpers ------------------------------------------------------------------------------

    def with_delay(self, seconds: float) -> Reply:
        """The same reply, sent after `seconds` of silence."""
        return replace(self, delay=seconds)

    def with_headers(self, **headers: str) -> Reply:
        """The same reply with extra response headers (underscores in names become dashes)."""
        extra = tuple((name.replace("_", "-"), value) for name, value in headers.items())
        return replace(self, extra_headers=self.extra_headers + extra)

    @classmethod
    def _error(
        cls,
        kind: ErrorKind,
        retry_after: str | float | datetime | None = None,
        retry_after_ms: int | None = None,
    ) -> Reply:
        return cls(
            outcome=Outcome.ERROR,
            error=kind,
            retry_after=None if retry_after is None else format_retry_after(retry_after),
            retry_after_ms=retry_after_ms,
        )
