"""Types shared by the three provider wire formats."""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .replies import ErrorKind, Reply

Provider = Literal["openai", "anthropic", "gemini"]

_BASE62 = string.ascii_letters + string.digits
_BASE64URL = _BASE62 + "-_"


class IdSource:
    """Provider-shaped ids; seedable so that re-recorded cassettes do not churn."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def base62(self, length: int) -> str:
        return "".join(self._rng.choice(_BASE62) for _ in range(length))

    def base64url(self, length: int) -> str:
        return "".join(self._rng.choice(_BASE64URL) for _ in range(length))

    def hex(self, length: int) -> str:
        return "".join(self._rng.choice("0123456789abcdef") for _ in range(length))

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)


@dataclass(frozen=True)
class Call:
    """What a wire format needs to know about one request."""

    provider: Provider
    model: str  # as requested: the body's "model", or the model in a Gemini URL
    stream: bool
    include_usage: bool  # OpenAI stream_options.include_usage
    reply: Reply
    ids: IdSource
    created: int  # unix time of the request
    api_key: str  # as sent; error messages quote it masked, the way the real APIs do


@dataclass(frozen=True)
class HttpReply:
    """A complete, non-streamed HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event; `data` is the exact text after `data: `."""

    data: str
    event: str | None = None

    def frame(self, terminator: str) -> bytes:
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {self.data}{terminator}".encode()


class WireFormat(Protocol):
    """How one provider spells answers, streams and errors."""

    sse_terminator: str

    def completion(self, call: Call) -> HttpReply: ...

    def stream_headers(self, call: Call) -> dict[str, str]: ...

    def stream_events(self, call: Call) -> list[SseEvent]: ...

    def error(self, call: Call, kind: ErrorKind) -> HttpReply: ...


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def split_text(text: str, parts: int) -> list[str]:
    """Split like a tokenizer would: whole words with their leading space, `parts` pieces."""
    words: list[str] = []
    for index, word in enumerate(text.split(" ")):
        words.append(word if index == 0 else " " + word)
    parts = max(1, min(parts, len(words)))
    size, extra = divmod(len(words), parts)
    pieces: list[str] = []
    start = 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        pieces.append("".join(words[start:end]))
        start = end
    return pieces


def running_counts(total: int, parts: int) -> list[int]:
    """Cumulative token counts after each of `parts` chunks, ending exactly at `total`."""
    return [round(total * (index + 1) / parts) for index in range(parts)]


def retry_headers(reply: Reply) -> dict[str, str]:
    headers: dict[str, str] = {}
    if reply.retry_after is not None:
        headers["retry-after"] = reply.retry_after
    if reply.retry_after_ms is not None:
        headers["retry-after-ms"] = str(reply.retry_after_ms)
    return headers


def retry_seconds(reply: Reply, default: int) -> int:
    """Seconds until a rate limit resets, for the headers that restate it."""
    if reply.retry_after is not None and reply.retry_after.isdigit():
        return int(reply.retry_after)
    if reply.retry_after_ms is not None:
        return max(1, reply.retry_after_ms // 1000)
    return default
