"""The load loop: ``concurrency`` workers sending requests until a count or a time limit is
reached, whichever comes first, so that every run stops by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from request import StreamOutcome

Call = Callable[[int], Awaitable[StreamOutcome | None]]
"""Send request number ``i``; a stream returns its chunk count and first-chunk time."""


@dataclass
class Batch:
    """What one run of the loop measured."""

    wall: float = 0.0
    cpu: float = 0.0
    """``time.process_time()`` spent: this process's CPU, all threads (LiteLLM uses some)."""
    latencies: list[float] = field(default_factory=list)
    first_chunks: list[float] = field(default_factory=list)
    chunks: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def sent(self) -> int:
        return self.completed + sum(self.errors.values())


async def drive(
    call: Call, *, concurrency: int, max_requests: int, seconds: float, each_once: bool = False
) -> Batch:
    """Run ``call`` from ``concurrency`` workers until ``max_requests`` were sent or ``seconds``
    have passed; requests in flight then are waited for and counted. With ``each_once`` every
    worker sends at least one request whatever the clock says (a warm-up that opens every
    connection of the pool).
    """
    batch = Batch()
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal sent
        must_send = each_once
        while must_send or (sent < max_requests and time.perf_counter() < deadline):
            must_send = False
            index = sent
            sent += 1
            started = time.perf_counter()
            try:
                outcome = await call(index)
            except Exception as exc:  # noqa: BLE001 - a failed call is counted, not fatal
                batch.errors[type(exc).__name__] += 1
                continue
            batch.latencies.append(time.perf_counter() - started)
            if outcome is not None:
                chunks, first_chunk_at = outcome
                batch.chunks += chunks
                if first_chunk_at is not None:
                    batch.first_chunks.append(first_chunk_at - started)

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    batch.wall = time.perf_counter() - wall_start
    batch.cpu = time.process_time() - cpu_start
    return batch
