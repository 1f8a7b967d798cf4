"""Memory over many calls, and the cost-and-token work done per call, in one fresh process.

1. Warm up (2,000 calls, one in four streamed, concurrency 64), ``gc.collect()``, read RSS.
2. Send 20,000 more calls of the same mix in steps, reading RSS (after ``gc.collect()``) after
   each step; the growth is the last reading minus the warm reading.
3. Time the cost and token counting of a sample of plain and of streamed calls: the functions
   that do it are wrapped with a timer of the calling thread's CPU (``time.thread_time``), so
   work LiteLLM does on its logging threads counts too and waiting for the GIL does not.

    python bench/memory.py --base-url http://127.0.0.1:PORT [--client aiecs_llm]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from clients import CLIENTS, make_client
from common import MB, emit, loopback_url, rss_bytes
from load import Batch, drive
from request import BenchClient, StreamOutcome

STREAM_EVERY = 4
"""One call in four is streamed."""

# label -> (module, attribute path) of the functions that price a call or count its tokens.
# LiteLLM's logging calculator includes its response_cost_calculator; aiecs_llm's usage_cost
# includes litellm.cost_per_token (only our code calls it through the module attribute); our
# build_response includes usage_cost. Rows are shown side by side, never added up.
_LOGGING = "litellm.litellm_core_utils.litellm_logging"
TIMED: dict[str, tuple[tuple[str, str], ...]] = {
    "litellm Logging.response_cost_calculator": (
        (_LOGGING, "Logging.response_cost_calculator"),
        (_LOGGING, "Logging._response_cost_calculator"),
    ),
    "litellm response_cost_calculator": (("litellm", "response_cost_calculator"),),
    "litellm.cost_per_token": (("litellm", "cost_per_token"),),
    "litellm token_counter": (("litellm", "token_counter"), ("litellm.utils", "token_counter")),
    "aiecs_llm pricing.usage_cost": (("aiecs_llm.accounting.pricing", "usage_cost"),),
    "aiecs_llm pricing.estimate_tokens": (("aiecs_llm.accounting.pricing", "estimate_tokens"),),
    "aiecs_llm reading.build_response": (("aiecs_llm.client.reading", "build_response"),),
    "aiecs_llm Accounting.succeeded": (("aiecs_llm.client.booking", "Accounting.succeeded"),),
}


@dataclass
class Timing:
    calls: int = 0
    cpu_ns: int = 0


def _timed(function: Callable[..., Any], timing: Timing) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time_ns()
        try:
            return function(*args, **kwargs)
        finally:
            timing.cpu_ns += time.thread_time_ns() - start
            timing.calls += 1

    return wrapper


@contextmanager
def timed_functions() -> Iterator[dict[str, Timing]]:
    """Wrap every function of ``TIMED`` that exists in this process; restore them after."""
    timings: dict[str, Timing] = {}
    restore: list[tuple[object, str, object]] = []
    for label, targets in TIMED.items():
        for module_name, path in targets:
            if module_name.split(".", 1)[0] not in sys.modules:
                continue  # a client that never loads this package: nothing to time
            owner: object = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            original = getattr(owner, name, None)
            if original is None:
                continue
            timing = timings.setdefault(label, Timing())
            setattr(owner, name, _timed(original, timing))
            restore.append((owner, name, original))
    try:
        yield timings
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


def _rss_mb() -> float:
    gc.collect()
    return round(rss_bytes() / MB, 2)


class Mix:
    """Calls of the client: every ``STREAM_EVERY``-th streamed, or all of one kind."""

    def __init__(self, client: BenchClient, every: int | None) -> None:
        self.client = client
        self.every = every

    async def __call__(self, index: int) -> StreamOutcome | None:
        if self.every is not None and (self.every == 1 or index % self.every == self.every - 1):
            return await self.client.stream()
        await self.client.plain()
        return None


async def _cost_sample(mix: Mix, calls: int, concurrency: int, seconds: float) -> dict[str, Any]:
    with timed_functions() as timings:
        batch = await drive(mix, concurrency=concurrency, max_requests=calls, seconds=seconds)
    done = max(batch.completed, 1)
    return {
        "calls": batch.completed,
        "errors": dict(batch.errors),
        "cpu_us_per_call": round(batch.cpu / done * 1e6, 1),
        "functions": {
            label: {
                "calls_per_call": round(timing.calls / done, 2),
                "cpu_us_per_call": round(timing.cpu_ns / done / 1000, 1),
            }
            for label, timing in timings.items()
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + float(args.max_seconds)

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    client = make_client(args.client, args.base_url)
    mix = Mix(client, STREAM_EVERY)
    c = args.concurrency
    try:
        # The first call imports LiteLLM: seconds with the loop blocked, so it goes alone.
        await drive(mix, concurrency=1, max_requests=1, seconds=60)
        warm = await drive(mix, concurrency=c, max_requests=args.warmup, seconds=left())
        rss_warm = _rss_mb()
        before = _start_trace(args.trace) if args.trace else None
        samples = []
        total = Batch()
        while total.sent < args.calls and left() > 0:
            step = min(args.step, args.calls - total.sent)
            batch = await drive(mix, concurrency=c, max_requests=step, seconds=left())
            total.wall += batch.wall
            total.cpu += batch.cpu
            total.latencies += batch.latencies
            total.errors.update(batch.errors)
            samples.append({"calls": total.sent, "rss_mb": _rss_mb()})
        rss_after = samples[-1]["rss_mb"] if samples else rss_warm
        growth_sites = _growth_sites(before) if before is not None else None
        cost = {
            "plain": await _cost_sample(Mix(client, None), args.cost_calls, c, left()),
            "stream": await _cost_sample(Mix(client, 1), args.cost_calls, c, left()),
        }
    finally:
        await client.close()
    return {
        "client": args.client,
        "concurrency": c,
        "stream_share": 1 / STREAM_EVERY,
        "warmup_calls": warm.sent,
        "warmup_errors": dict(warm.errors),
        "rss_warm_mb": rss_warm,
        "calls": total.sent,
        "calls_target": args.calls,
        "complete": total.sent >= args.calls,
        "errors": dict(total.errors),
        "rss_after_mb": rss_after,
        "growth_mb": round(float(rss_after) - rss_warm, 2),
        "rss_samples": samples,
        "cpu_ms_per_call": round(total.cpu / max(total.completed, 1) * 1000, 4),
        "rps": round(total.completed / total.wall, 1) if total.wall else None,
        "cost_work": cost,
        "growth_sites": growth_sites,
    }


def _start_trace(frames: int) -> tracemalloc.Snapshot:
    # Diagnosis only: tracing makes every allocation slower, so the CPU figures of a traced run
    # mean little; the growth sites are what it is for.
    tracemalloc.start(frames)
    return tracemalloc.take_snapshot()


def _growth_sites(before: tracemalloc.Snapshot, top: int = 12) -> list[dict[str, Any]]:
    """Where memory still held at the end was allocated since ``before``: the innermost
    frames of the largest differences, with their callers.
    """
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    sites = []
    for stat in after.compare_to(before, "traceback")[:top]:
        sites.append(
            {
                "kib": round(stat.size_diff / 1024, 1),
                "blocks": stat.count_diff,
                "traceback": [f"{frame.filename}:{frame.lineno}" for frame in stat.traceback],
            }
        )
    return sites


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--client", choices=CLIENTS, default="aiecs_llm")
    parser.add_argument("--base-url", type=loopback_url, required=True, help="http://127.0.0.1:N")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=2_000, help="calls between RSS readings")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--cost-calls", type=int, default=500, help="per kind, plain and stream")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop after this")
    parser.add_argument(
        "--trace", type=int, default=0, metavar="FRAMES", help="diagnose growth: tracemalloc depth"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    emit(asyncio.run(run(parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
