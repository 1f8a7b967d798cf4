"""``aiecs-llm demo``: the offline tour of ``aiecs_llm.cli.demo_tour``."""

from __future__ import annotations

import argparse
import asyncio

from aiecs_llm.cli.command import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``demo`` takes no options."""


def run(_args: argparse.Namespace) -> int:
    """Play the tour; 1 when a step did not behave as recorded."""
    from aiecs_llm.cli import demo_tour as demo

    return 1 if asyncio.run(demo.run()) else 0


COMMAND = Command(
    summary="offline tour: recorded conversations replayed through the real client stack",
    description=(
        "An offline tour: recorded conversations with each provider replayed through the real "
        "client stack (validation, LiteLLM, HTTP, error classification, usage and cost). No key "
        "and no network needed; every step is labelled as a replay."
    ),
    examples=("aiecs-llm demo",),
    add_arguments=add_arguments,
    run=run,
)
