"""The fake provider server, extended for the reliability suite.

- ``RawReply``: answer with exact bytes (status, body, SSE frames), for malformed answers that
  no provider's wire format would produce.
- ``MutatedReply``: a valid answer in the provider's own wire format, with its JSON changed by a
  function (a field deleted, given the wrong type, a list emptied ...).
- A seeded, server-side fault mix (``fault_rate``): once the queue is empty, each request gets
  a fault of a random kind with that probability, so a load test needs no ``enqueue`` from the
  test process. ``GET /__stats`` reports how many requests were served and faults injected.

``python -m tests.reliability.chaos_server --fault-rate 0.05 --seed 1234`` runs it in a process
of its own (so that it does not share the client's GIL): it prints its port on the first line
of stdout and stops when its stdin closes, or after ``--max-seconds`` whatever happens.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from tests.fake_provider import FakeProviderServer, Reply
from tests.fake_provider.wire import Call, SseEvent, WireFormat

STATS_PATH = "/__stats"

# name -> reply; each is a fault a provider or the network really produces.
FAULTS: dict[str, Reply] = {
    "rate_limited": Reply.rate_limited(retry_after_ms=20),
    "server_error": Reply.server_error(),
    "unavailable": Reply.unavailable(),
    "overloaded": Reply.overloaded(),
    "reset_connection": Reply.reset_connection(),
    "malformed_json": Reply.malformed_json(),
    "cut_before_text": Reply.cut_stream(after_chunks=0),
    "cut_mid_stream": Reply.cut_stream(after_chunks=3),
    "hang": Reply.hang(),
}


@dataclass(frozen=True)
class RawReply(Reply):
    """Exact bytes: ``raw_body`` for a plain answer, or ``raw_events`` (frames written as they
    are, then the connection closed normally) when the request asked to stream.
    """

    status: int = 200
    raw_body: bytes = b""
    content_type: str = "application/json"
    raw_events: tuple[bytes, ...] | None = None


@dataclass(frozen=True)
class MutatedReply(Reply):
    """A valid answer whose JSON goes through ``mutate`` first (for a stream: the JSON of the
    event at ``event_index``, or of every event when it is None; ``[DONE]`` is left alone).
    """

    mutate: Callable[[Any], Any] | None = None
    event_index: int | None = None


class ChaosServer(FakeProviderServer):
    """``FakeProviderServer`` plus raw and mutated replies and a seeded fault mix."""

    def __init__(
        self,
        *,
        fault_rate: float = 0.0,
        seed: int = 1234,
        record: bool = True,
        default: Reply | None = None,
    ) -> None:
        super().__init__(default=default, seed=seed)
        self.fault_rate = fault_rate
        self.record = record
        self._rng = random.Random(seed)
        self._kinds = sorted(FAULTS)
        self._stats_lock = threading.Lock()
        self._served = 0
        self._faults: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        """Requests served and faults injected so far, by kind."""
        with self._stats_lock:
            return {"requests": self._served, "faults": dict(self._faults)}

    def _next_reply(self) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        with self._stats_lock:
            self._served += 1
            if self.fault_rate and self._rng.random() < self.fault_rate:
                kind = self._rng.choice(self._kinds)
                self._faults[kind] += 1
                return FAULTS[kind]
        return self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == STATS_PATH:
            return web.json_response(self.stats())
        try:
            return await super()._handle(request)
        finally:
            if not self.record:
                with self._lock:
                    self._requests.clear()

    async def _respond(
        self, request: web.Request, wire: WireFormat, call: Call
    ) -> web.StreamResponse:
        reply = call.reply
        if isinstance(reply, RawReply):
            return await _raw(request, reply, stream=call.stream)
        if isinstance(reply, MutatedReply) and reply.mutate is not None:
            return await self._mutated(request, wire, call, reply)
        return await super()._respond(request, wire, call)

    async def _mutated(
        self, request: web.Request, wire: WireFormat, call: Call, reply: MutatedReply
    ) -> web.StreamResponse:
        assert reply.mutate is not None
        plain = replace(call, reply=Reply.ok(reply.text, chunks=reply.chunks))
        if not call.stream:
            answer = wire.completion(plain)
            body = reply.mutate(json.loads(answer.body))
            data = json.dumps(body, ensure_ascii=False).encode()
            return web.Response(status=answer.status, headers=answer.headers, body=data)
        events = wire.stream_events(plain)
        changed = []
        for index, event in enumerate(events):
            sent = event
            if event.data != "[DONE]" and reply.event_index in (None, index):
                data = json.dumps(reply.mutate(json.loads(event.data)), ensure_ascii=False)
                sent = SseEvent(data, event.event)
            changed.append(sent.frame(wire.sse_terminator))
        raw = RawReply(raw_events=tuple(changed), content_type="text/event-stream")
        return await _raw(request, raw, stream=True)


async def _raw(request: web.Request, reply: RawReply, *, stream: bool) -> web.StreamResponse:
    if stream and reply.raw_events is not None:
        response = web.StreamResponse(
            status=reply.status, headers={"content-type": "text/event-stream"}
        )
        await response.prepare(request)
        for frame in reply.raw_events:
            await response.write(frame)
        await response.write_eof()
        return response
    return web.Response(
        status=reply.status, body=reply.raw_body, headers={"content-type": reply.content_type}
    )


def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args(argv)
    server = ChaosServer(fault_rate=args.fault_rate, seed=args.seed, record=False)
    server.start()
    try:
        print(server.port, flush=True)
        # Stop when the parent closes our stdin (or dies), and in any case after max-seconds.
        reader = threading.Thread(target=sys.stdin.read, daemon=True)
        reader.start()
        reader.join(args.max_seconds)
    finally:
        server.stop()


if __name__ == "__main__":
    _serve(sys.argv[1:])
