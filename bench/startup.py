"""Start-up costs, each the median of N fresh processes: ``import aiecs_llm`` and ``import
litellm`` (time inside the process and RSS after the import), and ``aiecs-llm --help`` (wall
time of the whole command, interpreter start included).

Each measurement is preceded by one discarded run, so bytecode is compiled and the files are in
the page cache: this is a cold process, not a cold disk.

    python bench/startup.py [--runs 7] [--litellm-runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import MB, child_env, emit, last_json_line

# Only builtin modules are imported before the clock starts, so nothing the measured import
# needs is loaded in advance.
_IMPORT_PROBE = """
import sys, time
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
import json, os
pages = int(open("/proc/self/statm").read().split()[1])
print(json.dumps({{
    "seconds": elapsed,
    "rss_bytes": pages * os.sysconf("SC_PAGE_SIZE"),
    "litellm_loaded": "litellm" in sys.modules,
    "modules": len(sys.modules),
}}))
"""


def _probe(statement: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
        env=child_env(),
        timeout=120,
    )
    return last_json_line(result.stdout)


def import_cost(module: str, runs: int, statement: str | None = None) -> dict[str, object]:
    """Median import time and RSS of ``module`` (or of ``statement``) over ``runs`` fresh
    processes.
    """
    statement = statement or (f"import {module}" if module else "pass")
    _probe(statement)
    samples = [_probe(statement) for _ in range(runs)]
    seconds = [float(str(sample["seconds"])) for sample in samples]
    rss = [int(str(sample["rss_bytes"])) for sample in samples]
    return {
        "module": module or "(bare interpreter)",
        "runs": runs,
        "import_ms_median": round(statistics.median(seconds) * 1000, 1),
        "import_ms_min": round(min(seconds) * 1000, 1),
        "import_ms_max": round(max(seconds) * 1000, 1),
        "rss_mb_median": round(statistics.median(rss) / MB, 1),
        "litellm_loaded": any(bool(sample["litellm_loaded"]) for sample in samples),
        "modules": samples[-1]["modules"],
    }


def import_breakdown(module: str, top: int = 8) -> list[dict[str, object]]:
    """Where ``import module`` spends its time: ``-X importtime`` self times summed by
    top-level package, largest first (one process; for reading, not for targets).
    """
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        env=child_env(),
        timeout=120,
    )
    by_package: Counter[str] = Counter()
    for line in result.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        by_package[parts[2].strip().split(".", 1)[0]] += int(parts[0])
    return [
        {"package": name, "self_ms": round(micros / 1000, 1)}
        for name, micros in by_package.most_common(top)
    ]


def help_command() -> list[str]:
    """The ``aiecs-llm`` console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("aiecs-llm")
    if script.exists():
        return [str(script), "--help"]
    return [sys.executable, "-m", "aiecs_llm", "--help"]


def command_wall(command: list[str], runs: int) -> dict[str, object]:
    """Median wall time of ``command`` over ``runs`` runs (after one discarded run)."""
    env = child_env()
    subprocess.run(command, capture_output=True, check=True, env=env, timeout=120)
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env, timeout=120)
        walls.append(time.perf_counter() - start)
    return {
        "command": " ".join(
            Path(command[0]).name if i == 0 else part for i, part in enumerate(command)
        ),
        "runs": runs,
        "wall_ms_median": round(statistics.median(walls) * 1000, 1),
        "wall_ms_min": round(min(walls) * 1000, 1),
        "wall_ms_max": round(max(walls) * 1000, 1),
    }


def measure(runs: int, litellm_runs: int) -> dict[str, object]:
    """Every start-up figure, as ``bench/run.py`` reports them."""
    return {
        "python": import_cost("", runs),
        "aiecs_llm": import_cost("aiecs_llm", runs),
        # The package import is lazy (PEP 562); this is what a service's first use costs.
        "aiecs_llm_client": import_cost(
            "aiecs_llm", runs, "from aiecs_llm import OpenAIClient, LLMMessage"
        ),
        "aiecs_llm_breakdown": import_breakdown("aiecs_llm"),
        "litellm": import_cost("litellm", litellm_runs),
        "help": command_wall(help_command(), runs),
        "help_python_m": command_wall([sys.executable, "-m", "aiecs_llm", "--help"], runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--litellm-runs", type=int, default=5, help="import litellm takes ~4 s")
    args = parser.parse_args(argv)
    emit(measure(args.runs, args.litellm_runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
