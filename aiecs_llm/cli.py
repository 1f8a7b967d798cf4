"""The ``aiecs-llm`` command.

``--help`` stays instant: LiteLLM is only imported by the commands that call a model.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import structlog

from aiecs_llm.errors import LLMClientError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, shared by ``main`` and the docs."""
    parser = argparse.ArgumentParser(
        prog="aiecs-llm",
        description="One async interface to OpenAI, Anthropic, Google and other LLM providers.",
    )
    parser.add_argument("--debug", action="store_true", help="show log events and tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="offline tour: recorded conversations replayed through the real client stack",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(debug=args.debug)
    try:
        if args.command == "demo":
            from aiecs_llm import demo

            return 1 if asyncio.run(demo.run()) else 0
    except LLMClientError as error:
        if args.debug:
            raise
        sys.stderr.write(f"aiecs-llm: {type(error).__name__}: {error.message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("aiecs-llm: interrupted\n")
        return 130
    return 0


def _configure_logging(*, debug: bool) -> None:
    # The CLI is an application, so it may decide where log events go: stderr, and only
    # errors unless --debug (the commands report failed calls themselves). The library itself
    # never configures logging.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.ERROR
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


if __name__ == "__main__":
    sys.exit(main())
