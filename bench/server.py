"""A fast OpenAI-compatible chat completions server for the benchmarks, on 127.0.0.1 only; it
also answers Anthropic's ``POST /v1/messages`` (``anthropic_wire.py``) and Gemini's
``POST /v1beta/models/<model>:generateContent`` / ``:streamGenerateContent`` (``gemini_wire.py``).

``POST /v1/chat/completions`` answers in OpenAI's wire format: a JSON completion with usage, or
an SSE stream (a role chunk, ``--chunks`` content chunks, a finish chunk, a usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``) sent with chunked encoding over
keep-alive connections, as api.openai.com does.

It is a bare ``asyncio.Protocol`` with hand-written HTTP/1.1 parsing and answers built once per
model and reused, so that a request costs the server a few tens of microseconds: the clients under
test, not the server, must be the bottleneck (``bench/run.py`` reports the server's CPU per call
to show it). Fault knobs: ``--error-rate`` answers that share of requests with 429 or 500 in
OpenAI's error format, ``--delay-ms`` holds every answer, ``--chunk-delay-ms`` spaces stream
chunks.

Run: ``python bench/server.py [--port 0]``; it prints the port on the first line of stdout and
stops on SIGTERM, SIGINT, the end of stdin (with ``--watch-stdin``) or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field

import anthropic_wire
import gemini_wire
from typing_extensions import override

HOST = "127.0.0.1"
PATH_SUFFIX = b"/chat/completions"
# OpenAI answers with the dated name of the model it served; LiteLLM prices that name.
DATED_MODELS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}
PROMPT_TOKENS = 12
CREATED = 1_735_689_600
WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")
MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Options:
    """What the server sends: content chunks per stream and the fault knobs."""

    chunks: int = 19
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (429, 500)
    delay: float = 0.0
    chunk_delay: float = 0.0
    seed: int = 1


@dataclass
class Counters:
    """Requests served, for the summary printed at exit."""

    requests: int = 0
    streams: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _http(status: int, reason: str, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
        % (status, reason.encode(), content_type, len(body))
        + body
    )


def _usage(completion_tokens: int) -> dict[str, object]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _texts(chunks: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(chunks)]


def completion_body(model: str, chunks: int) -> bytes:
    """The non-streamed answer: the same text the stream spells out, with usage."""
    return _compact(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(_texts(chunks)),
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(chunks),
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        }
    )


def stream_events(model: str, chunks: int, *, include_usage: bool) -> list[bytes]:
    """Each SSE event already framed as one HTTP chunk, the terminating chunk last."""

    def chunk(delta: dict[str, object], finish: str | None) -> dict[str, object]:
        event: dict[str, object] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            event["usage"] = None
        return event

    payloads = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    payloads += [chunk({"content": text}, None) for text in _texts(chunks)]
    payloads.append(chunk({}, "stop"))
    if include_usage:
        payloads.append(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_bench",
                "choices": [],
                "usage": _usage(chunks),
            }
        )
    data = [b"data: " + _compact(payload) + b"\n\n" for payload in payloads]
    data.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(event), event) for event in data] + [b"0\r\n\r\n"]


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


def error_reply(status: int) -> bytes:
    """OpenAI's error body; a 429 names a zero wait so a retrying client does not sleep."""
    if status == 429:
        error = {
            "message": "Rate limit reached for gpt-4o-mini (bench fault).",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        body = _compact({"error": error})
        return (
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            b"retry-after: 0\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
    error = {"message": "The server had an error (bench fault).", "type": "server_error"}
    error.update(param=None, code=None)
    return _http(status, "Internal Server Error", b"application/json", _compact({"error": error}))


NOT_FOUND = _http(404, "Not Found", b"application/json", b'{"error":{"message":"not found"}}')
BAD_REQUEST = _http(400, "Bad Request", b"application/json", b'{"error":{"message":"bad json"}}')


class Replies:
    """Answers built once per (model, stream, usage) and reused: the server's hot path is a
    dictionary lookup and a socket write.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self._plain: dict[str, bytes] = {}
        self._streams: dict[tuple[str, bool], list[bytes]] = {}
        self._anthropic: dict[tuple[str, str, bool], list[bytes]] = {}
        self._gemini: dict[tuple[str, bool], list[bytes]] = {}
        self._errors = {status: error_reply(status) for status in options.error_statuses}
        self._random = random.Random(options.seed)
        self._next_error = 0

    def plain(self, model: str) -> bytes:
        reply = self._plain.get(model)
        if reply is None:
            body = completion_body(DATED_MODELS.get(model, model), self.options.chunks)
            reply = self._plain[model] = _http(200, "OK", b"application/json", body)
        return reply

    def stream(self, model: str, *, include_usage: bool) -> list[bytes]:
        key = (model, include_usage)
        events = self._streams.get(key)
        if events is None:
            served = DATED_MODELS.get(model, model)
            events = self._streams[key] = stream_events(
                served, self.options.chunks, include_usage=include_usage
            )
        return events

    def anthropic(self, model: str, *, stream: bool) -> list[bytes]:
        """Anthropic's answer, plain or streamed (faults are OpenAI-format only)."""
        key = ("anthropic", model, stream)
        pieces = self._anthropic.get(key)
        if pieces is None:
            served = anthropic_wire.DATED_MODELS.get(model, model)
            texts = _texts(self.options.chunks)
            if stream:
                events = anthropic_wire.stream_events(served, texts)
                pieces = [STREAM_HEAD + events[0], *events[1:]]
            else:
                body = anthropic_wire.completion_body(served, texts)
                pieces = [_http(200, "OK", b"application/json", body)]
            self._anthropic[key] = pieces
        return pieces

    def gemini(self, model: str, *, stream: bool) -> list[bytes]:
        """Gemini's answer, plain or streamed (faults are OpenAI-format only)."""
        key = (model, stream)
        pieces = self._gemini.get(key)
        if pieces is None:
            texts = _texts(self.options.chunks)
            if stream:
                events = gemini_wire.stream_events(model, texts)
                pieces = [STREAM_HEAD + events[0], *events[1:]]
            else:
                body = gemini_wire.completion_body(model, texts)
                pieces = [_http(200, "OK", b"application/json", body)]
            self._gemini[key] = pieces
        return pieces

    def fault(self) -> bytes | None:
        """An error answer for ``error_rate`` of the requests (statuses taken in turn)."""
        if self.options.error_rate <= 0 or self._random.random() >= self.options.error_rate:
            return None
        statuses = self.options.error_statuses
        status = statuses[self._next_error % len(statuses)]
        self._next_error += 1
        return self._errors[status]


class Connection(asyncio.Protocol):
    """One keep-alive connection: requests parsed from the byte stream as they complete."""

    def __init__(self, replies: Replies, counters: Counters) -> None:
        self.replies = replies
        self.counters = counters
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    @override
    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end])
            length = _content_length(head)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.handle(head, body)

    def handle(self, head: bytes, body: bytes) -> None:
        self.counters.requests += 1
        request_line = head.split(b"\r\n", 1)[0]
        parts = request_line.split(b" ")
        path = parts[1] if len(parts) >= 2 else b""
        anthropic = path.endswith(anthropic_wire.PATH_SUFFIX)
        gemini_model = gemini_wire.model_of(path)
        if parts[0] != b"POST" or not (anthropic or gemini_model or path.endswith(PATH_SUFFIX)):
            self.send([NOT_FOUND])
            return
        try:
            payload = json.loads(body)
        except ValueError:
            # Most likely a body this parser does not frame (chunked uploads): the rest of the
            # connection's bytes cannot be trusted, so answer and close.
            self.send([BAD_REQUEST])
            if self.transport is not None:
                self.transport.close()
            return
        fault = self.replies.fault()
        if fault is not None:
            self.counters.errors += 1
            self.send([fault])
            return
        if gemini_model is not None:
            stream = gemini_wire.STREAM_METHOD in path
            self.counters.streams += stream
            self.send(self.replies.gemini(gemini_model, stream=stream))
            return
        model = str(payload.get("model") or "gpt-4o-mini")
        if anthropic:
            stream = bool(payload.get("stream"))
            self.counters.streams += stream
            self.send(self.replies.anthropic(model, stream=stream))
            return
        if not payload.get("stream"):
            self.send([self.replies.plain(model)])
            return
        self.counters.streams += 1
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        events = self.replies.stream(model, include_usage=include_usage)
        self.send([STREAM_HEAD + events[0], *events[1:]])

    def send(self, pieces: list[bytes]) -> None:
        options = self.replies.options
        if options.delay <= 0 and options.chunk_delay <= 0:
            self._write_all(pieces)
            return
        # Delayed answers are scheduled, never slept on, so one slow reply holds no other.
        self.loop.call_later(options.delay, self._write_spaced, pieces, options.chunk_delay)

    def _write_all(self, pieces: list[bytes]) -> None:
        if self.transport is None:
            return
        # One write per SSE event, as a real server flushes each token: the client sees the
        # first chunk before the rest and reads the stream in several pieces.
        for piece in pieces:
            self.transport.write(piece)

    def _write_spaced(self, pieces: list[bytes], gap: float) -> None:
        if self.transport is None or not pieces:
            return
        self.transport.write(pieces[0])
        if len(pieces) > 1:
            self.loop.call_later(gap, self._write_spaced, pieces[1:], gap)


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    index = lowered.find(b"\r\ncontent-length:")
    if index < 0:
        return 0
    start = index + len(b"\r\ncontent-length:")
    stop = lowered.find(b"\r\n", start)
    return int(lowered[start : stop if stop >= 0 else None].strip() or 0)


async def serve(options: Options, *, port: int, watch_stdin: bool, max_seconds: float) -> Counters:
    """Serve until a signal, the end of stdin or ``max_seconds``; returns the counters."""
    loop = asyncio.get_running_loop()
    counters = Counters()
    replies = Replies(options)
    server = await loop.create_server(
        lambda: Connection(replies, counters), HOST, port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watcher = loop.create_task(_stop_at_end_of_stdin(stop)) if watch_stdin else None
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except TimeoutError:
        sys.stderr.write(f"bench server: stopping after --max-seconds {max_seconds:g}\n")
    if watcher is not None:
        watcher.cancel()
    server.close()
    return counters


async def _stop_at_end_of_stdin(stop: asyncio.Event) -> None:
    # The harness holds our stdin open; if it dies without a SIGTERM, the pipe closes and the
    # server does not outlive it.
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    stop.set()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    parser.add_argument("--chunks", type=int, default=19, help="content chunks per stream")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share answered 429/500")
    parser.add_argument("--error-statuses", default="429,500", help="statuses taken in turn")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="hold every answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="gap between chunks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        chunks=args.chunks,
        error_rate=args.error_rate,
        error_statuses=tuple(int(s) for s in args.error_statuses.split(",") if s),
        delay=args.delay_ms / 1000,
        chunk_delay=args.chunk_delay_ms / 1000,
        seed=args.seed,
    )
    counters = asyncio.run(
        serve(options, port=args.port, watch_stdin=args.watch_stdin, max_seconds=args.max_seconds)
    )
    times = os.times()
    summary = {
        "requests": counters.requests,
        "streams": counters.streams,
        "errors": counters.errors,
        "cpu_seconds": round(times.user + times.system, 3),
        "wall_seconds": round(time.monotonic() - counters.started, 3),
    }
    sys.stderr.write(f"bench server: {json.dumps(summary)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
