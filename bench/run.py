"""The benchmark, in one run: ``nox -s bench`` (or ``python bench/run.py [--quick]``).

Starts the local server (bench/server.py, 127.0.0.1 only), runs every (client, mode,
concurrency) cell ``--repeat`` times, each in a fresh process (bench/run_client.py), takes the
medians, measures start-up (bench/startup.py) and memory and cost work (bench/memory.py),
prints a markdown report with ratios to raw LiteLLM and to each provider's official SDK and
PASS/MISS per target (bench/targets.py), and writes ``bench/results/latest.json`` (and
``latest.md``).

Every load is bounded: a cell measures for ``--seconds`` and a process that overruns its
timeout is killed; the server stops with this process (its stdin closes) or after an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import report
import startup
from clients import CLIENTS
from common import BENCH_DIR, ROOT, child_env, cpu_seconds, last_json_line
from targets import CELLS, cell_name, evaluate

RESULTS = BENCH_DIR / "results"
PYTHON = sys.executable
# Metrics whose median across runs is reported (the others describe the run, not the client).
_MEDIAN_FIELDS = (
    "rps",
    "p50_ms",
    "p99_ms",
    "ttfc_p50_ms",
    "ttfc_p99_ms",
    "cpu_ms_per_call",
    "cpu_ms_per_chunk",
    "chunks_per_call",
    "cpu_utilization",
    "rss_mb",
    "server_us_per_request",
    "server_core_share",
)


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextmanager
def bench_server(chunks: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The server process and its base URL; stopped on the way out, whatever happens."""
    process = subprocess.Popen(
        [PYTHON, str(BENCH_DIR / "server.py"), "--watch-stdin", "--chunks", str(chunks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip())
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the server stops at the end of its stdin
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(timeout=10)


def run_child(command: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a measuring script in a fresh process; its last JSON line."""
    result = subprocess.run(
        [PYTHON, *command],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return last_json_line(result.stdout)


def run_cell(
    server: subprocess.Popen[str],
    base_url: str,
    *,
    client: str,
    mode: str,
    concurrency: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One fresh client process for one cell, with the server's CPU over that process."""
    command = [
        str(BENCH_DIR / "run_client.py"),
        *("--client", client, "--mode", mode, "--concurrency", str(concurrency)),
        *("--seconds", str(args.seconds), "--warmup-seconds", str(args.warmup_seconds)),
        *("--base-url", base_url),
    ]
    server_cpu = cpu_seconds(server.pid)
    started = time.perf_counter()
    result = run_child(command, timeout=args.seconds + args.warmup_seconds + 180)
    result["process_wall_s"] = round(time.perf_counter() - started, 2)
    # The server idles while the client imports, so its CPU over the whole client process is
    # what that process's requests (warm-up included) cost it.
    spent = cpu_seconds(server.pid) - server_cpu
    per_request = spent / max(int(result["sent_total"]), 1)
    result["server_us_per_request"] = round(per_request * 1e6, 1)
    result["server_core_share"] = round(per_request * float(result["rps"] or 0), 3)
    return result


def run_memory(base_url: str, client: str, args: argparse.Namespace) -> dict[str, Any]:
    """bench/memory.py for ``client``, in a fresh process."""
    _log(f"memory ({client}): {args.memory_warmup:,} warm-up + {args.memory_calls:,} calls ...")
    return run_child(
        [
            str(BENCH_DIR / "memory.py"),
            *("--client", client, "--base-url", base_url),
            *("--warmup", str(args.memory_warmup), "--calls", str(args.memory_calls)),
            *("--cost-calls", str(args.cost_calls)),
        ],
        timeout=1200,
    )


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in _MEDIAN_FIELDS:
        values = [run[name] for run in runs if run.get(name) is not None]
        merged[name] = round(statistics.median(values), 4) if values else None
    rps = [run["rps"] for run in runs if run.get("rps")]
    merged["rps_min"], merged["rps_max"] = (min(rps), max(rps)) if rps else (None, None)
    errors: dict[str, int] = {}
    for run in runs:
        for name, count in run["errors"].items():
            errors[name] = errors.get(name, 0) + count
    merged["errors"] = errors
    merged["runs"] = len(runs)
    return merged


def run_cells(server: subprocess.Popen[str], base_url: str, args: argparse.Namespace) -> list[Any]:
    cells = [(mode, c) for mode, c in CELLS if mode in args.modes]
    total = args.repeat * len(args.clients) * len(cells)
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        # Each round starts with another client, so no client always runs first or last.
        shift = repeat % len(args.clients)
        order = [*args.clients[shift:], *args.clients[:shift]]
        for client in order:
            for mode, concurrency in cells:
                result = run_cell(
                    server, base_url, client=client, mode=mode, concurrency=concurrency, args=args
                )
                result["repeat"] = repeat
                runs.append(result)
                _log(
                    f"[{len(runs)}/{total}] {client:9} {mode:6} c={concurrency:<3} "
                    f"{result['rps']:>9,.1f} req/s  p50 {result['p50_ms']:.2f} ms  "
                    f"cpu/call {result['cpu_ms_per_call']:.3f} ms  "
                    f"server {result['server_core_share'] * 100:.0f}% of a core"
                    + (f"  errors {result['errors']}" if result["errors"] else "")
                )
    return runs


def _versions() -> str:
    names = (
        "litellm",
        "openai",
        "anthropic",
        "google-genai",
        "httpx",
        "httpx2",
        "aiohttp",
        "tenacity",
        "aiecs-llm",
    )
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _commit() -> str:
    """The checkout measured: short commit, "+changes" when tracked files differ from it."""

    def git(*arguments: str) -> str:
        command = ["git", *arguments]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        return result.stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "-uno")
    except OSError:
        return "unknown"
    return f"{head}{'+changes' if dirty else ''}" if head else "unknown"


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 run per cell, short loads")
    parser.add_argument("--repeat", type=int, help="runs per cell (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (2.5, quick 1)")
    parser.add_argument("--warmup-seconds", type=float, help="(1, quick 0.5)")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    parser.add_argument("--modes", default="plain,stream")
    parser.add_argument("--chunks", type=int, default=19, help="content chunks per stream")
    parser.add_argument("--memory-warmup", type=int, help="(2,000, quick 500)")
    parser.add_argument("--memory-calls", type=int, help="(20,000, quick 3,000)")
    parser.add_argument("--cost-calls", type=int, help="per kind (500, quick 200)")
    parser.add_argument("--startup-runs", type=int, help="(7, quick 3)")
    parser.add_argument("--litellm-runs", type=int, help="import litellm runs (5, quick 2)")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--memory-reference", action="store_true", help="also raw LiteLLM's memory (~4 min more)"
    )
    parser.add_argument("--label", help="says where and how it was measured, in the report")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "repeat": (3, 1),
        "seconds": (2.5, 1.0),
        "warmup_seconds": (1.0, 0.5),
        "memory_warmup": (2_000, 500),
        "memory_calls": (20_000, 3_000),
        "cost_calls": (500, 200),
        "startup_runs": (7, 3),
        "litellm_runs": (5, 2),
    }
    for name, (full, short) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)
    args.clients = [name for name in args.clients.split(",") if name]
    args.modes = [name for name in args.modes.split(",") if name]
    unknown = set(args.clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients {sorted(unknown)}; choose from {', '.join(CLIENTS)}")
    args.label = args.label or ("quick run" if quick else "full run")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    meta = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "label": args.label,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "versions": _versions(),
        "commit": _commit(),
        "load_before": _load(),
    }
    startup_results = memory_results = reference = None
    with bench_server(args.chunks) as (server, base_url):
        _log(f"bench server {base_url} (pid {server.pid})")
        runs = run_cells(server, base_url, args)
        if not args.skip_memory:
            memory_results = run_memory(base_url, "aiecs_llm", args)
            if args.memory_reference:
                reference = run_memory(base_url, "litellm", args)
    if not args.skip_startup:
        _log("start-up ...")
        startup_results = startup.measure(args.startup_runs, args.litellm_runs)
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        cell = cell_name(run["mode"], run["concurrency"])
        grouped.setdefault(run["client"], {}).setdefault(cell, []).append(run)
    medians_by_cell = {
        client: {cell: medians(cell_runs) for cell, cell_runs in by_cell.items()}
        for client, by_cell in grouped.items()
    }
    meta["load_after"] = _load()
    meta["duration_s"] = round(time.monotonic() - began, 1)
    config = {
        key: value for key, value in vars(args).items() if key not in {"out", "label", "quick"}
    }
    results: dict[str, Any] = {
        "meta": meta,
        "config": {**config, "quick": args.quick},
        "medians": medians_by_cell,
        "runs": runs,
        "startup": startup_results,
        "memory": memory_results,
        "memory_reference": reference,
    }
    results["targets"] = evaluate(medians_by_cell, startup_results, memory_results)
    text = report.markdown(results)
    sys.stdout.write(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(text)
    _log(f"wrote {args.out} and {args.out.with_suffix('.md')} in {meta['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
