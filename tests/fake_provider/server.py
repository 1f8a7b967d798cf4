"""`FakeProviderServer`: OpenAI, Anthropic and Gemini wire formats on 127.0.0.1, with faults.

The server runs in its own thread and event loop, so one instance serves sync and async tests
alike and a hanging reply never blocks the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from .anthropic_wire import AnthropicWire
from .gemini_wire import GeminiWire
from .openai_wire import OpenAIWire
from .received import RecordedRequest, provider_for
from .replies import Outcome, Reply
from .wire import Call, HttpReply, IdSource, Provider, SseEvent, WireFormat

_WIRES: Final[dict[Provider, WireFormat]] = {
    "openai": OpenAIWire(),
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
}
_START_TIMEOUT: Final = 10.0


def _drop_connection(request: web.Request) -> None:
    # Closing the transport without a (complete) response is what a crashed upstream or a
    # cut network looks like to the client: no status line, or a body that stops short.
    if request.transport is not None:
        request.transport.close()


class FakeProviderServer:
    """An HTTP server that answers like the real provider APIs, one scripted `Reply` at a time.

    Replies queued with `enqueue` are used in order, whatever the provider; once the queue is
    empty every request gets `default` (a plain success unless given).
    """

    def __init__(self, *, default: Reply | None = None, seed: int | None = None) -> None:
        self.default: Reply = default or Reply.ok()
        self._ids = IdSource(seed)
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeProviderServer is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        """`api_base` for LiteLLM's openai/ provider."""
        return f"{self.url}/v1"

    @property
    def anthropic_base(self) -> str:
        """`api_base` for LiteLLM's anthropic/ provider."""
        return self.url

    @property
    def gemini_base(self) -> str:
        """`api_base` for LiteLLM's gemini/ provider (it appends models/<model>:<method>)."""
        return f"{self.url}/v1beta"

    # -- scripting ---------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Queued replies not used yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget queued replies and received requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("FakeProviderServer is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-provider", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._start_app(), loop).result(_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop_app(), loop).result(_START_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_START_TIMEOUT)
        loop.close()
        self._loop = self._thread = None
        self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    async def _start_app(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short shutdown timeout: hanging handlers are released by `_stopping` anyway.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _stop_app(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- request handling --------------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload: Any = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        recorded = RecordedRequest(
            provider=provider_for(request.path),
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            json=payload,
            body=raw,
        )
        with self._lock:
            self._requests.append(recorded)
        if recorded.provider is None or request.method != "POST":
            message = f"fake_provider: no provider API at {request.method} {request.path}"
            return web.json_response({"error": {"message": message}}, status=404)

        reply = self._next_reply()
        call = Call(
            provider=recorded.provider,
            model=recorded.model or "",
            stream=recorded.stream,
            include_usage=recorded.include_usage,
            reply=reply,
            ids=self._ids,
            created=int(time.time()),
            api_key=recorded.api_key,
        )
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return await self._respond(request, _WIRES[recorded.provider], call)

    async def _respond(
        self, request: web.Request, wire: WireFormat, call: Call
    ) -> web.StreamResponse:
        reply = call.reply
        extra = dict(reply.extra_headers)
        if reply.outcome in (Outcome.HANG, Outcome.RESET):
            if reply.outcome is Outcome.HANG:
                assert self._stopping is not None
                await self._stopping.wait()
            _drop_connection(request)
            return web.Response()  # never sent: the connection is gone
        if reply.outcome is Outcome.ERROR:
            assert reply.error is not None
            return self._plain(wire.error(call, reply.error), extra)
        if call.stream:
            events = wire.stream_events(call)
            if reply.outcome is Outcome.CUT_STREAM:
                return await self._stream(request, wire, call, events[: reply.cut_after], cut=True)
            if reply.outcome is Outcome.MALFORMED_JSON:
                events[0] = replace(events[0], data=events[0].data[: len(events[0].data) // 2])
            return await self._stream(request, wire, call, events, cut=False)
        answer = wire.completion(call)
        if reply.outcome is Outcome.CUT_STREAM:
            return await self._cut_body(request, answer, extra)
        if reply.outcome is Outcome.MALFORMED_JSON:
            answer = replace(answer, body=answer.body[: len(answer.body) // 2])
        return self._plain(answer, extra)

    @staticmethod
    def _plain(answer: HttpReply, extra: dict[str, str]) -> web.Response:
        return web.Response(status=answer.status, headers=answer.headers | extra, body=answer.body)

    async def _stream(
        self,
        request: web.Request,
        wire: WireFormat,
        call: Call,
        events: list[SseEvent],
        *,
        cut: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers=wire.stream_headers(call) | dict(call.reply.extra_headers)
        )
        await response.prepare(request)
        for index, event in enumerate(events):
            if index and call.reply.chunk_delay:
                await asyncio.sleep(call.reply.chunk_delay)
            await response.write(event.frame(wire.sse_terminator))
        if cut:
            _drop_connection(request)
        else:
            await response.write_eof()
        return response

    @staticmethod
    async def _cut_body(
        request: web.Request, answer: HttpReply, extra: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=answer.headers | extra)
        response.content_length = len(answer.body)  # promise the whole body, send half
        await response.prepare(request)
        await response.write(answer.body[: len(answer.body) // 2])
        _drop_connection(request)
        return response
