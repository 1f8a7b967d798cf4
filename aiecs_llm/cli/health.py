"""``aiecs-llm health``: which providers are configured and whether they answer."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import TYPE_CHECKING

from aiecs_llm.cli.command import Command
from aiecs_llm.cli.formatting import one_line, table

if TYPE_CHECKING:
    from aiecs_llm.client.health import ProviderHealth

_HEADERS = ("PROVIDER", "KEY", "KEYS", "LIVE", "LATENCY", "DETAIL")
_NUMERIC_COLUMNS = {2, 4}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``health``."""
    parser.add_argument(
        "--no-live",
        action="store_true",
        help="only report configured keys; send no request",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print each provider's key fingerprint and live check; 1 when a live check failed."""
    from aiecs_llm.client.health import health_check
    from aiecs_llm.config.settings import LLMSettings

    report = asyncio.run(health_check(LLMSettings.load(), live=not args.no_live))
    if args.json:
        documents = {name: dataclasses.asdict(health) for name, health in report.items()}
        sys.stdout.write(json.dumps(documents, indent=2) + "\n")
    else:
        rows = [_row(health) for health in report.values()]
        sys.stdout.write(table(_HEADERS, rows, right=_NUMERIC_COLUMNS))
    failed = [name for name, health in report.items() if health.live is False]
    if failed:
        sys.stderr.write(f"aiecs-llm: live check failed for {', '.join(failed)}\n")
        return 1
    return 0


def _row(health: ProviderHealth) -> list[str]:
    if health.live is None:
        live = "not run" if health.key_present else "no key"
    else:
        live = "ok" if health.live else "FAILED"
    latency = "-" if health.latency_ms is None else f"{health.latency_ms:.0f} ms"
    detail = health.error if health.error is not None else health.model or ""
    return [
        health.provider,
        health.key_fingerprint or "missing",
        str(health.keys),
        live,
        latency,
        one_line(detail, limit=100),
    ]


COMMAND = Command(
    summary="show configured providers, key fingerprints and a live check",
    description=(
        "For each provider: whether a key is configured (shown only as a sha256: fingerprint), "
        "how many keys rotate, and a live check (one output token from the provider's default "
        "model, a fraction of a cent) with its latency. Exits 1 when a live check failed."
    ),
    examples=("aiecs-llm health", "aiecs-llm health --no-live --json"),
    add_arguments=add_arguments,
    run=run,
)
