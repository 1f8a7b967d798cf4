"""The direct transport's Gemini path against LiteLLM's, request by request: a scripted local
server (127.0.0.1) answers both paths alike and records what each sent. The bytes sent must be
the same (URL, key header, body), and so must the outcome (``LLMResponse`` minus timings, or
the error) for answers the conformance recordings do not cover: long-decode continuations,
``RetryInfo`` errors, error events inside a stream, unreadable answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

import aiecs_llm
from aiecs_llm import GoogleAIClient, LLMMessage, direct

KEY = "test-key-gemini"
# Set by the HTTP client, not by the request LiteLLM builds.
TRANSPORT_HEADERS = frozenset({"user-agent", "accept", "accept-encoding", "host", "connection"})
TIMINGS = ("response_time", "time_to_first_chunk")
ERROR_FIELDS = ("message", "status_code", "code", "retry_after", "provider")

SYSTEM_AND_USER = [LLMMessage("system", "Be brief."), LLMMessage("user", "Say hi.")]
CONVERSATION = [
    LLMMessage("system", "You answer in French."),
    LLMMessage("user", "Hello"),
    LLMMessage("assistant", "Bonjour"),
    LLMMessage("user", "Thanks, and «goodbye»?"),
]


def _usage(prompt: int, answer: int, **more: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": answer,
        "totalTokenCount": prompt + answer + sum(more.values()),
        **more,
    }


def _answer(
    text: str,
    reason: str | None = "STOP",
    usage: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if reason is not None:
        candidate["finishReason"] = reason
    if token is not None:
        candidate["continuationToken"] = token
    body: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }
    if usage is not None:
        body["usageMetadata"] = usage
    return body


@dataclass
class Reply:
    """One scripted HTTP answer: a JSON body, SSE events, or raw bytes."""

    status: int = 200
    body: Any = None
    events: Sequence[Any] | None = None
    raw: bytes | None = None


@dataclass
class Script:
    replies: list[Reply]
    received: list[dict[str, Any]] = field(default_factory=list)
    _next: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            {
                "method": request.method,
                "path": request.path,
                "query": sorted(request.query.items()),
                "headers": {
                    name.lower(): value
                    for name, value in request.headers.items()
                    if name.lower() not in TRANSPORT_HEADERS
                },
                "body": body,
            }
        )
        reply = self.replies[min(self._next, len(self.replies) - 1)]
        self._next += 1
        if reply.events is not None:
            response = web.StreamResponse(
                status=reply.status, headers={"Content-Type": "text/event-stream"}
            )
            await response.prepare(request)
            for event in reply.events:
                data = event if isinstance(event, str) else json.dumps(event)
                await response.write(f"data: {data}\r\n\r\n".encode())
            await response.write_eof()
            return response
        raw = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        return web.Response(
            status=reply.status, body=raw, headers={"Content-Type": "application/json"}
        )

    def reset(self) -> None:
        self.received.clear()
        self._next = 0


@dataclass
class Server:
    base_url: str
    script: Script = field(default_factory=lambda: Script([]))


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = Server(base_url="")

    async def handle(request: web.Request) -> web.StreamResponse:
        return await running.script.handle(request)

    app = web.Application()

    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    running.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1beta"
    yield running
    await runner.cleanup()


async def _run(
    server: Server,
    script: Script,
    monkeypatch: pytest.MonkeyPatch,
    *,
    use_direct: bool,
    stream: bool,
    messages: Sequence[LLMMessage] = SYSTEM_AND_USER,
    **options: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    server.script = script
    script.reset()
    monkeypatch.setenv(direct.ENABLE_ENV, "1" if use_direct else "0")
    client = GoogleAIClient(api_key=KEY, base_url=server.base_url, max_retries=0)
    options.setdefault("model", "gemini-2.5-flash")
    options["cache"] = "bypass"  # the two paths ask the same: each must reach the server
    try:
        try:
            if stream:
                chunks = client.stream_text(messages, **options)
                text = "".join([chunk async for chunk in chunks])
                response = chunks.response
            else:
                text = None
                response = await client.generate_text(messages, **options)
        except aiecs_llm.LLMClientError as error:
            outcome: dict[str, Any] = {
                "error": type(error).__name__,
                **{name: getattr(error, name) for name in ERROR_FIELDS},
            }
        else:
            outcome = {"response": response.model_dump(exclude=set(TIMINGS)), "streamed": text}
        went_direct = client._direct is not None and client._direct._transport is not None
        assert went_direct is use_direct, "not the path under test"
    finally:
        await client.close()
    return outcome, list(script.received)


async def _both(
    server: Server,
    script: Script,
    monkeypatch: pytest.MonkeyPatch,
    **call: Any,
) -> dict[str, Any]:
    through_litellm, sent_by_litellm = await _run(
        server, script, monkeypatch, use_direct=False, **call
    )
    through_direct, sent_directly = await _run(server, script, monkeypatch, use_direct=True, **call)
    assert sent_directly == sent_by_litellm
    assert through_direct == through_litellm
    return through_direct


REQUESTS = {
    "system-and-user": {"messages": SYSTEM_AND_USER, "temperature": 0.0, "max_tokens": 50},
    "conversation-non-ascii": {"messages": CONVERSATION, "temperature": 0.7, "max_tokens": 7},
    "defaults": {"messages": [LLMMessage("user", "hi")]},
    "gemini-3-v1alpha": {"messages": SYSTEM_AND_USER, "model": "gemini-3-pro-preview"},
}


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("name", list(REQUESTS))
async def test_same_request_bytes_and_answer(
    server: Server, monkeypatch: pytest.MonkeyPatch, name: str, stream: bool
) -> None:
    usage = _usage(9, 4, thoughtsTokenCount=12, cachedContentTokenCount=3)
    if stream:
        reply = Reply(events=[_answer("Hel", None, _usage(9, 1)), _answer("lo", "STOP", usage)])
    else:
        reply = Reply(body=_answer("Hello", "STOP", usage))
    outcome = await _both(server, Script([reply]), monkeypatch, stream=stream, **REQUESTS[name])
    assert outcome["response"]["content"] == "Hello"
    assert outcome["response"]["reasoning_tokens"] == 12


RETRY_INFO = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"},
        ],
    }
}
ERRORS = {
    "429-retry-info": Reply(status=429, body=RETRY_INFO),
    "400-invalid-argument": Reply(
        status=400,
        body={"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}},
    ),
    "403-permission": Reply(
        status=403,
        body={"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}},
    ),
    "500-internal": Reply(
        status=500, body={"error": {"code": 500, "message": "oops", "status": "INTERNAL"}}
    ),
    "503-text": Reply(status=503, raw=b"upstream connect error"),
    "200-unreadable": Reply(raw=b'{"candidates": ['),
    "200-no-usage": Reply(body=_answer("Hi")),
    "200-safety": Reply(body=_answer("", "SAFETY", _usage(5, 0))),
    "200-max-tokens": Reply(body=_answer("Hi", "MAX_TOKENS", _usage(5, 1))),
}


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("name", list(ERRORS))
async def test_same_error_or_answer(
    server: Server, monkeypatch: pytest.MonkeyPatch, name: str, stream: bool
) -> None:
    reply = ERRORS[name]
    if stream and reply.status == 200 and reply.raw is None:
        reply = Reply(events=[reply.body])
    await _both(server, Script([reply]), monkeypatch, stream=stream)


STREAM_ENDINGS = {
    "error-event": [_answer("Hel", None, _usage(5, 1)), RETRY_INFO],
    "unreadable-event": [_answer("Hel", None, _usage(5, 1)), '{"candidates": ['],
    "no-finish-reason": [_answer("Hel", None, _usage(5, 1))],
}


@pytest.mark.parametrize("name", list(STREAM_ENDINGS))
async def test_same_stream_ending(
    server: Server, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    await _both(server, Script([Reply(events=STREAM_ENDINGS[name])]), monkeypatch, stream=True)


def _continued(stream: bool, last: Reply) -> Script:
    if stream:
        events = [
            _answer("Part ", None, _usage(9, 5)),
            _answer("one. ", "CONTINUATION", _usage(9, 20), token="tok-1"),
        ]
        return Script([Reply(events=events), last])
    first = _answer("Part one. ", "CONTINUATION", _usage(9, 20), token="tok-1")
    return Script([Reply(body=first), last])


CONTINUATIONS = {
    "answered": lambda stream: _continued(
        stream,
        Reply(events=[_answer("Part two.", "STOP", _usage(40, 10))])
        if stream
        else Reply(body=_answer("Part two.", "STOP", _usage(40, 10))),
    ),
    "failed": lambda stream: _continued(stream, Reply(status=500, body=RETRY_INFO)),
    "unanswered": lambda stream: _continued(
        stream, Reply(events=[]) if stream else Reply(raw=b"not json")
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
@pytest.mark.parametrize("name", list(CONTINUATIONS))
async def test_same_long_decode_continuations(
    server: Server, monkeypatch: pytest.MonkeyPatch, name: str, stream: bool
) -> None:
    script = CONTINUATIONS[name](stream)
    outcome = await _both(server, script, monkeypatch, stream=stream, max_tokens=100)
    assert len(script.received) == 2, "the continuation was not requested"
    assert json.loads(script.received[1]["body"])["continuationToken"] == "tok-1"
    if name == "answered":
        assert outcome["response"]["content"] == "Part one. Part two."
