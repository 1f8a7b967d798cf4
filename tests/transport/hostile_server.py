"""A scriptable HTTP(S) server on 127.0.0.1 for the transport parity matrix.

Unlike ``tests.fake_provider`` it knows no wire format: each request gets exactly the bytes a
test scripted (status, headers, a whole body, or a list of ``(delay, bytes)`` steps written one
after the other, for server-sent events and stalls), so a test can send what no well-behaved
provider would: CR-only line endings, an error event in the middle of a stream, a 200 whose body
is an error, a stream that goes silent after its first chunk.

Every request is recorded (method, path, query, headers with credentials masked, the JSON
body), so a test can compare what each transport actually sent.

The server runs in its own thread and event loop: a stalled reply never blocks the test's loop,
and a stall ends as soon as the server stops (no handler outlives the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

_START_TIMEOUT: Final = 10.0
MASKED: Final = "***"
_SECRET_HEADERS: Final = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization"}
)
_SECRET_QUERY: Final = frozenset({"key"})


@dataclass(frozen=True)
class Step:
    """Wait ``delay`` seconds, then write ``data`` (nothing when empty: a pure stall)."""

    delay: float
    data: bytes = b""


@dataclass(frozen=True)
class Script:
    """What one request gets.

    ``delay`` seconds pass before the status line. Then either ``body`` is sent whole (with a
    Content-Length), or, when ``steps`` is given, the headers go out at once and each step is
    written in turn before the response ends normally.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    steps: Sequence[Step] | None = None
    delay: float = 0.0

    @classmethod
    def json(cls, payload: Any, *, status: int = 200, **options: Any) -> Script:
        """A whole JSON body."""
        headers = {"Content-Type": "application/json", **options.pop("headers", {})}
        return cls(status=status, headers=headers, body=json.dumps(payload).encode(), **options)

    @classmethod
    def sse(cls, steps: Sequence[Step | bytes], **options: Any) -> Script:
        """A ``text/event-stream`` answer; plain ``bytes`` in ``steps`` are sent without delay."""
        headers = {"Content-Type": "text/event-stream", **options.pop("headers", {})}
        timed = [step if isinstance(step, Step) else Step(0.0, step) for step in steps]
        return cls(headers=headers, steps=tuple(timed), **options)


@dataclass(frozen=True)
class Received:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Names in lower case; credential headers masked as ``***``."""
    json: Any
    """The parsed body; None when it was empty or not JSON."""


class HostileServer:
    """Answers each request with the next queued ``Script`` (else ``default``), and records it.

    ``ssl_context`` makes it an HTTPS server.
    """

    def __init__(
        self, *, default: Script | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.default = default or Script.json({"error": {"message": "hostile_server: no script"}})
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._queue: deque[Script] = deque()
        self._received: list[Received] = []
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("HostileServer is not running")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def enqueue(self, *scripts: Script) -> None:
        """Scripts for the next requests, in order."""
        with self._lock:
            self._queue.extend(scripts)

    @property
    def received(self) -> list[Received]:
        """The requests received so far, oldest first."""
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        """Forget queued scripts and received requests."""
        with self._lock:
            self._queue.clear()
            self._received.clear()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("HostileServer is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="hostile-server", daemon=True)
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
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Stalled handlers wake on `_stopping`; the short timeout covers the rest.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=self._ssl).start()

    async def _stop_app(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- request handling --------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        if seconds <= 0:
            return
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload: Any = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        headers = {
            name.lower(): MASKED if name.lower() in _SECRET_HEADERS else value
            for name, value in request.headers.items()
        }
        query = {
            name: MASKED if name in _SECRET_QUERY else value
            for name, value in request.query.items()
        }
        with self._lock:
            self._received.append(Received(request.method, request.path, query, headers, payload))
            script = self._queue.popleft() if self._queue else self.default
        await self._pause(script.delay)
        if script.steps is None:
            return web.Response(status=script.status, headers=script.headers, body=script.body)
        response = web.StreamResponse(status=script.status, headers=script.headers)
        try:
            await response.prepare(request)
            for step in script.steps:
                await self._pause(step.delay)
                if step.data:
                    await response.write(step.data)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away (a timeout, an early close): nothing left to send
        return response
