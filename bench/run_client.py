"""One benchmark cell in a fresh process: one client, plain or streamed calls, one concurrency.

The process imports the client, warms it up (connections opened, lazy imports done, caches
filled), then measures a bounded run and prints one JSON line: throughput, latency p50/p99, time
to first chunk, and this process's own CPU per call and per content chunk (the server is another
process, so ``time.process_time()`` here is the client's cost alone).

    python bench/run_client.py --client litellm --mode stream --concurrency 64 \\
        --base-url http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from clients import CLIENTS, make_client
from common import MB, emit, loopback_url, percentile, rss_bytes
from load import Batch, drive
from request import BenchClient, StreamOutcome


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 4)


def summarize(batch: Batch, *, warmup: Batch, args: argparse.Namespace) -> dict[str, object]:
    completed = batch.completed
    return {
        "client": args.client,
        "mode": args.mode,
        "concurrency": args.concurrency,
        "requests": completed,
        "errors": dict(batch.errors),
        "warmup_requests": warmup.sent,
        "warmup_errors": dict(warmup.errors),
        "sent_total": 1 + warmup.sent + batch.sent,
        "wall_s": round(batch.wall, 4),
        "rps": round(completed / batch.wall, 2) if batch.wall else None,
        "p50_ms": _ms(percentile(batch.latencies, 0.50)),
        "p99_ms": _ms(percentile(batch.latencies, 0.99)),
        "ttfc_p50_ms": _ms(percentile(batch.first_chunks, 0.50)),
        "ttfc_p99_ms": _ms(percentile(batch.first_chunks, 0.99)),
        "cpu_ms_per_call": _ms(batch.cpu / completed) if completed else None,
        "chunks_per_call": round(batch.chunks / completed, 2) if completed else None,
        "cpu_ms_per_chunk": _ms(batch.cpu / batch.chunks) if batch.chunks else None,
        "cpu_utilization": round(batch.cpu / batch.wall, 3) if batch.wall else None,
        "rss_mb": round(rss_bytes() / MB, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    client: BenchClient = make_client(args.client, args.base_url)
    streaming = args.mode == "stream"

    async def call(_index: int) -> StreamOutcome | None:
        if streaming:
            return await client.stream()
        await client.plain()
        return None

    try:
        # One call alone first: LiteLLM (and so aiecs_llm) import most of themselves on the
        # first call, which blocks the loop for seconds. Then a concurrent warm-up in which
        # every worker sends at least once, so that every connection of the pool is open.
        await drive(call, concurrency=1, max_requests=1, seconds=60)
        warmup = await drive(
            call,
            concurrency=args.concurrency,
            max_requests=args.warmup_requests,
            seconds=args.warmup_seconds,
            each_once=True,
        )
        batch = await drive(
            call,
            concurrency=args.concurrency,
            max_requests=args.requests,
            seconds=args.seconds,
        )
    finally:
        await client.close()
    return summarize(batch, warmup=warmup, args=args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--mode", choices=("plain", "stream"), default="plain")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=100_000, help="at most this many")
    parser.add_argument("--seconds", type=float, default=3.0, help="measure at most this long")
    parser.add_argument("--warmup-requests", type=int, default=200)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--base-url", type=loopback_url, required=True, help="http://127.0.0.1:N")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    emit(asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
