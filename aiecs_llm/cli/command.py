"""The ``aiecs-llm`` commands, one module each; ``aiecs_llm.cli.main`` lists them in one table.

A command module imports only the standard library and cheap parts of aiecs_llm at module level,
so that building the parser (``--help``) never loads LiteLLM or aiohttp: everything heavy is
imported inside ``run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its help, its arguments and what it does.

    Attributes:
        summary: One line for the command list of ``aiecs-llm --help``.
        description: The text above the options in ``aiecs-llm <command> --help``.
        examples: Example invocations, shown below the options.
        add_arguments: Declares the command's options on its parser.
        run: Does the work; returns the exit code. Raises ``LLMClientError`` for failures,
            which the CLI reports as one line.

    """

    summary: str
    description: str
    examples: tuple[str, ...]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
