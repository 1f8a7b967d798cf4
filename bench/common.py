"""Small helpers shared by the benchmark scripts: percentiles, memory and CPU readings, and the
environment the measured processes run in.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024

# Variables that would change what a measured process does: configuration of aiecs_llm (a
# ledger, budgets, a config file), OpenAI defaults, and proxies (which could route benchmark
# traffic off this machine).
_SCRUBBED_PREFIXES = ("LLM_", "OPENAI_", "AIECS_LLM_")
_SCRUBBED = frozenset(
    {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}
)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` 0.5 for p50); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size from /proc (Linux)."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of another process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces; the fields after it are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a measured process: ours without aiecs_llm/OpenAI configuration or
    proxies, LiteLLM's bundled cost map (no download), loopback never proxied.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _SCRUBBED and not name.startswith(_SCRUBBED_PREFIXES)
    }
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def emit(result: Mapping[str, object]) -> None:
    """One JSON line on stdout: how a measured process reports to ``bench/run.py``."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def last_json_line(text: str) -> dict[str, object]:
    """The last JSON object printed by a measured process (libraries may print before it)."""
    for raw in reversed(text.splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise ValueError(f"no JSON result in the output: {text[-500:]!r}")


def loopback_url(url: str) -> str:
    """``url`` if it points at this machine; for ``--base-url`` (argparse ``type=``)."""
    if urlsplit(url).hostname not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError("benchmark traffic goes to this machine only (127.0.0.1)")
    return url.rstrip("/")
