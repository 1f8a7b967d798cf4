"""The cells, the providers and the targets of the benchmark: which client is compared with
which, and every target PASS or MISS, from the medians ``bench/run.py`` collected.

Each provider has three clients on its wire format: aiecs_llm's, raw LiteLLM's and the
provider's official SDK's. aiecs_llm is compared with the other two of its provider (issue 13,
item 6): at concurrency 64, >= 2x raw LiteLLM for whole answers and >= 3x for streams, client
CPU per streamed chunk <= 0.2 ms (targets); >= 1.2x the provider's SDK for both and <= 0.1 ms
per chunk (goals). The baseline rows are the earlier floor: >= 0.95x raw LiteLLM in every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CELLS: tuple[tuple[str, int], ...] = (("plain", 1), ("plain", 64), ("stream", 1), ("stream", 64))
FULL_MEMORY_CALLS = 20_000
TARGET_PLAIN, TARGET_STREAM, TARGET_CHUNK_MS = 2.0, 3.0, 0.2
GOAL_SDK, GOAL_CHUNK_MS = 1.2, 0.1

Cells = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""client -> cell name ("plain c=64") -> median metrics."""


@dataclass(frozen=True)
class Provider:
    """One wire format and its three clients."""

    name: str
    ours: str
    litellm: str
    sdk: str


PROVIDERS = (
    Provider("OpenAI", ours="aiecs_llm", litellm="litellm", sdk="openai"),
    Provider(
        "Anthropic", ours="aiecs_llm_anthropic", litellm="litellm_anthropic", sdk="anthropic_sdk"
    ),
    Provider("Gemini", ours="aiecs_llm_gemini", litellm="litellm_gemini", sdk="genai_sdk"),
)
_PROVIDER_OF = {
    client: provider
    for provider in PROVIDERS
    for client in (provider.ours, provider.litellm, provider.sdk)
}


def cell_name(mode: str, concurrency: int) -> str:
    return f"{mode} c={concurrency}"


def provider_of(client: str) -> Provider:
    """The provider whose wire format ``client`` speaks (the raw HTTP clients speak OpenAI's)."""
    return _PROVIDER_OF.get(client, PROVIDERS[0])


def metric(cells: Cells, client: str, cell: str, name: str) -> Any:
    return cells.get(client, {}).get(cell, {}).get(name)


def ratio(cells: Cells, client: str, cell: str, against: str | None = None) -> float | None:
    """``client``'s throughput in ``cell`` over ``against``'s (default: raw LiteLLM on the
    client's wire format); None when either was not measured.
    """
    base_client = against if against is not None else provider_of(client).litellm
    ours, base = metric(cells, client, cell, "rps"), metric(cells, base_client, cell, "rps")
    if not ours or not base:
        return None
    return float(ours) / float(base)


def worst_chunk_ms(cells: Cells, client: str) -> float | None:
    """The client's CPU per streamed chunk in its worst stream cell."""
    values = [metric(cells, client, cell_name("stream", c), "cpu_ms_per_chunk") for c in (1, 64)]
    known = [float(value) for value in values if value is not None]
    return max(known) if known else None


def status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def _at_most(value: float | None, ceiling: float) -> bool | None:
    return None if value is None else value <= ceiling


def _times(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "not measured"


def _ms(value: float | None) -> str:
    return f"{value:.3f} ms" if value is not None else "not measured"


Add = Callable[[str, str, str, bool | None, str], None]


def evaluate(cells: Cells, startup: Mapping[str, Any] | None, memory: Any) -> list[dict[str, Any]]:
    """Every target of the issue, PASS or MISS, each row marked baseline, target or goal."""
    rows: list[dict[str, Any]] = []

    def add(name: str, required: str, measured: str, ok: bool | None, kind: str) -> None:
        rows.append(
            {"target": name, "required": required, "measured": measured, "status": status(ok)}
            | {"kind": kind}
        )

    for provider in PROVIDERS:
        for mode, c in CELLS:
            cell = cell_name(mode, c)
            value = ratio(cells, provider.ours, cell)
            name = f"{provider.name}: throughput {cell} vs raw LiteLLM"
            add(name, ">= 0.95x", _times(value), _at_least(value, 0.95), "baseline")
    if startup:
        ours = startup["aiecs_llm"]
        ms, loaded = ours["import_ms_median"], ours["litellm_loaded"]
        add(
            "import aiecs_llm, without importing LiteLLM",
            "<= 150 ms, LiteLLM not loaded",
            f"{ms:.0f} ms, LiteLLM {'loaded' if loaded else 'not loaded'}",
            ms <= 150 and not loaded,
            "baseline",
        )
        help_ms = startup["help"]["wall_ms_median"]
        add("aiecs-llm --help", "<= 300 ms", f"{help_ms:.0f} ms", help_ms <= 300, "baseline")
    if memory:
        growth, calls = memory["growth_mb"], memory["calls"]
        short = "" if calls >= FULL_MEMORY_CALLS else f" (short run: {calls:,} calls, not 20,000)"
        add(
            "memory growth over 20,000 calls after warm-up",
            "<= 5 MB",
            f"{growth:+.2f} MB{short}",
            growth <= 5,
            "baseline",
        )
    for provider in PROVIDERS:
        _provider_rows(add, cells, provider)
    return rows


def _provider_rows(add: Add, cells: Cells, provider: Provider) -> None:
    plain, stream = cell_name("plain", 64), cell_name("stream", 64)
    for cell, floor in ((plain, TARGET_PLAIN), (stream, TARGET_STREAM)):
        value = ratio(cells, provider.ours, cell)
        name = f"{provider.name}: throughput {cell} vs raw LiteLLM"
        add(name, f">= {floor:g}x", _times(value), _at_least(value, floor), "target")
    worst = worst_chunk_ms(cells, provider.ours)
    name = f"{provider.name}: client CPU per streamed chunk (worst stream cell)"
    add(name, f"<= {TARGET_CHUNK_MS:g} ms", _ms(worst), _at_most(worst, TARGET_CHUNK_MS), "target")
    for cell in (plain, stream):
        value = ratio(cells, provider.ours, cell, against=provider.sdk)
        name = f"{provider.name}: throughput {cell} vs its official SDK ({provider.sdk})"
        add(name, f">= {GOAL_SDK:g}x", _times(value), _at_least(value, GOAL_SDK), "goal")
    name = f"{provider.name}: client CPU per streamed chunk (worst stream cell)"
    add(name, f"<= {GOAL_CHUNK_MS:g} ms", _ms(worst), _at_most(worst, GOAL_CHUNK_MS), "goal")


def provider_lines(cells: Cells) -> list[str]:
    """aiecs_llm per provider at c=64: its ratio to raw LiteLLM and to the provider's SDK, and
    the CPU per streamed chunk of both, each cell marked against its target or goal.
    """
    plain, stream = cell_name("plain", 64), cell_name("stream", 64)

    def against(cell: str, other: str, floor: float, ours: str) -> str:
        value = ratio(cells, ours, cell, against=other)
        return f"{_times(value)} {status(_at_least(value, floor))}" if value is not None else "-"

    lines = [
        "### aiecs_llm per provider: against raw LiteLLM and the provider's official SDK (c=64)",
        "",
        f"Targets: >= {TARGET_PLAIN:g}x raw LiteLLM for whole answers, >= {TARGET_STREAM:g}x for "
        f"streams, <= {TARGET_CHUNK_MS:g} ms client CPU per streamed chunk (worst stream cell); "
        f"goals: >= {GOAL_SDK:g}x the provider's SDK in both cells, <= {GOAL_CHUNK_MS:g} ms per "
        "chunk. CPU per chunk is the worst stream cell's (c=1 or c=64), the SDK's shown beside.",
        "",
        "| provider (SDK client) | plain vs LiteLLM | stream vs LiteLLM | plain vs SDK "
        "| stream vs SDK | aiecs_llm CPU/chunk (target; goal) | SDK CPU/chunk |",
        "|---|---|---|---|---|---|---|",
    ]
    for provider in PROVIDERS:
        ours = provider.ours
        worst = worst_chunk_ms(cells, ours)
        chunk = (
            f"{_ms(worst)} ({status(_at_most(worst, TARGET_CHUNK_MS))}; "
            f"{status(_at_most(worst, GOAL_CHUNK_MS))})"
            if worst is not None
            else "-"
        )
        sdk_chunk = worst_chunk_ms(cells, provider.sdk)
        lines.append(
            f"| {provider.name} ({provider.sdk}) "
            f"| {against(plain, provider.litellm, TARGET_PLAIN, ours)} "
            f"| {against(stream, provider.litellm, TARGET_STREAM, ours)} "
            f"| {against(plain, provider.sdk, GOAL_SDK, ours)} "
            f"| {against(stream, provider.sdk, GOAL_SDK, ours)} "
            f"| {chunk} | {_ms(sdk_chunk) if sdk_chunk is not None else '-'} |"
        )
    return lines


def target_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "### Targets",
        "",
        "| | target | required | measured | status |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        kind = row["kind"]
        lines.append(
            f"| {kind} | {row['target']} | {row['required']} | {row['measured']} | "
            f"**{row['status']}** |"
        )
    return lines
