"""The markdown report, from the results ``bench/run.py`` collected (the targets and which client
is compared with which: targets.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from targets import (
    CELLS,
    PROVIDERS,
    Cells,
    cell_name,
    metric,
    provider_lines,
    ratio,
    target_lines,
)


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _table(
    cells: Cells,
    clients: Sequence[str],
    columns: Sequence[str],
    render: Callable[[str, str], str],
) -> list[str]:
    lines = ["| client | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {client} | " + " | ".join(render(client, column) for column in columns) + " |"
        for client in clients
    ]
    return lines


def cell_tables(cells: Cells, clients: Sequence[str]) -> list[str]:
    """Throughput (with the ratio to raw LiteLLM, and aiecs_llm's to the provider's SDK), the
    per-provider comparison, latency, CPU, time to first chunk, server.
    """
    names = [cell_name(mode, c) for mode, c in CELLS]
    stream_names = [name for name in names if name.startswith("stream")]
    sdks = {provider.ours: provider.sdk for provider in PROVIDERS}

    def get(client: str, cell: str, name: str) -> Any:
        return metric(cells, client, cell, name)

    def throughput(client: str, cell: str) -> str:
        ratios = []
        to_litellm = ratio(cells, client, cell)
        if to_litellm is not None:
            ratios.append(f"{to_litellm:.2f}x")
        to_sdk = ratio(cells, client, cell, against=sdks[client]) if client in sdks else None
        if to_sdk is not None:
            ratios.append(f"{to_sdk:.2f}x SDK")
        suffix = f" ({'; '.join(ratios)})" if ratios else ""
        errors = get(client, cell, "errors")
        flag = " ⚠ errors" if errors else ""
        return f"{_num(get(client, cell, 'rps'), 0)}{suffix}{flag}"

    def latency(client: str, cell: str) -> str:
        return f"{_num(get(client, cell, 'p50_ms'), 2)} / {_num(get(client, cell, 'p99_ms'), 2)}"

    def cpu(client: str, cell: str) -> str:
        text = _num(get(client, cell, "cpu_ms_per_call"), 3)
        per_chunk = get(client, cell, "cpu_ms_per_chunk")
        return f"{text} ({_num(per_chunk, 3)}/chunk)" if per_chunk is not None else text

    def ttfc(client: str, cell: str) -> str:
        p50, p99 = get(client, cell, "ttfc_p50_ms"), get(client, cell, "ttfc_p99_ms")
        return f"{_num(p50, 2)} / {_num(p99, 2)}"

    def server(client: str, cell: str) -> str:
        per_request = get(client, cell, "server_us_per_request")
        share = get(client, cell, "server_core_share")
        if per_request is None:
            return "-"
        return f"{per_request:.0f} µs ({share * 100:.0f}%)" if share is not None else "-"

    return [
        "### Throughput, requests/s (ratio to raw LiteLLM on the same wire format; for aiecs_llm "
        "also to the provider's official SDK)",
        "",
        *_table(cells, clients, names, throughput),
        "",
        *provider_lines(cells),
        "",
        "### Latency p50 / p99, ms",
        "",
        *_table(cells, clients, names, latency),
        "",
        "### Client CPU per call, ms (per content chunk for streams)",
        "",
        *_table(cells, clients, names, cpu),
        "",
        "### Stream time to first chunk p50 / p99, ms",
        "",
        *_table(cells, clients, stream_names, ttfc),
        "",
        "### Server CPU per request (share of one core it used at that throughput)",
        "",
        *_table(cells, clients, names, server),
    ]


def startup_lines(startup: Mapping[str, Any]) -> list[str]:
    python, ours, litellm = startup["python"], startup["aiecs_llm"], startup["litellm"]
    lines = [
        "### Start-up (median of fresh processes)",
        "",
        "| measure | median | range | RSS after |",
        "|---|---|---|---|",
    ]
    imports = [("import aiecs_llm", ours)]
    if "aiecs_llm_client" in startup:
        imports.append(
            ("`from aiecs_llm import OpenAIClient, LLMMessage`", startup["aiecs_llm_client"])
        )
    imports.append(("import litellm", litellm))
    for label, item in imports:
        lines.append(
            f"| {label} ({item['runs']} runs) | {item['import_ms_median']:.0f} ms | "
            f"{item['import_ms_min']:.0f}-{item['import_ms_max']:.0f} ms | "
            f"{item['rss_mb_median']:.0f} MB |"
        )
    for key in ("help", "help_python_m"):
        item = startup[key]
        lines.append(
            f"| `{item['command']}` ({item['runs']} runs) | {item['wall_ms_median']:.0f} ms | "
            f"{item['wall_ms_min']:.0f}-{item['wall_ms_max']:.0f} ms | - |"
        )
    lines.append(f"| bare interpreter | - | - | {python['rss_mb_median']:.0f} MB |")
    lines.append("")
    loaded = "yes" if ours["litellm_loaded"] else "no"
    breakdown = ", ".join(
        f"{item['package']} {item['self_ms']:.0f}"
        for item in startup.get("aiecs_llm_breakdown", [])
    )
    lines.append(f"`import aiecs_llm` loads LiteLLM: {loaded}; {ours['modules']} modules loaded.")
    if breakdown:
        lines.append(f"Its import time by package (`-X importtime` self ms, one run): {breakdown}.")
    return lines


def memory_lines(memory: Mapping[str, Any], reference: Mapping[str, Any] | None) -> list[str]:
    lines = [
        "### Memory and cost work (aiecs_llm, one process)",
        "",
        f"- RSS after warm-up ({memory['warmup_calls']:,} calls): {memory['rss_warm_mb']:.1f} MB",
        f"- RSS after {memory['calls']:,} more calls (1 in 4 streamed, c={memory['concurrency']}):"
        f" {memory['rss_after_mb']:.1f} MB, growth **{memory['growth_mb']:+.2f} MB**",
        "- RSS along the way: "
        + ", ".join(f"{s['calls']:,}: {s['rss_mb']:.1f}" for s in memory["rss_samples"]),
        f"- Client CPU per call over the mix: {memory['cpu_ms_per_call']:.2f} ms "
        f"({memory['rps']} calls/s)",
    ]
    if memory.get("errors"):
        lines.append(f"- Errors: {memory['errors']}")
    if reference:
        lines.append(
            f"- Raw LiteLLM under the same load: {reference['rss_warm_mb']:.1f} MB after warm-up, "
            f"growth **{reference['growth_mb']:+.2f} MB** over {reference['calls']:,} calls"
        )
    cost = memory["cost_work"]
    plain, stream = cost["plain"], cost["stream"]
    lines += [
        "",
        f"Cost and token-count work per call (thread CPU inside each function; {plain['calls']} "
        f"plain and {stream['calls']} streamed calls; rows overlap, see bench/memory.py):",
        "",
        "| function | plain µs/call (calls) | stream µs/call (calls) |",
        "|---|---|---|",
    ]
    labels = list(dict.fromkeys([*plain["functions"], *stream["functions"]]))
    for label in labels:
        cells = []
        for sample in (plain, stream):
            item = sample["functions"].get(label)
            cells.append(
                f"{item['cpu_us_per_call']:.1f} ({item['calls_per_call']:g})" if item else "-"
            )
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines.append(
        f"| whole call (client CPU) | {plain['cpu_us_per_call']:.0f} | "
        f"{stream['cpu_us_per_call']:.0f} |"
    )
    return lines


def markdown(results: Mapping[str, Any]) -> str:
    """The whole report, as printed and as pasted into docs/benchmarks.md."""
    meta = results["meta"]
    cells: Cells = results["medians"]
    clients = [client for client in results["config"]["clients"] if client in cells]
    lines = [
        f"## Benchmark {meta['started']} ({meta['label']})",
        "",
        f"Commit {meta.get('commit', 'unknown')}; {meta['machine']}; Python {meta['python']}; "
        f"{meta['versions']}. "
        f"{results['config']['repeat']} run(s) per cell, medians; "
        f"{results['config']['seconds']:g} s measured per run after warm-up; "
        f"{results['config']['chunks']} content chunks per stream. "
        f"Load average before / after: {meta['load_before']} / {meta['load_after']}.",
        "",
        *cell_tables(cells, clients),
    ]
    if results.get("startup"):
        lines += ["", *startup_lines(results["startup"])]
    if results.get("memory"):
        lines += ["", *memory_lines(results["memory"], results.get("memory_reference"))]
    lines += ["", *target_lines(results["targets"])]
    return "\n".join(lines) + "\n"
