"""The ``aiecs-llm`` command (``python -m aiecs_llm`` is the same).

``--help`` stays fast: the command modules import LiteLLM and aiohttp only when they run.
Failures are one line on stderr (exit 2 for usage and configuration mistakes, 1 for provider
and other runtime failures, 130 when interrupted); ``--debug`` adds the traceback and the
library's log events.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Iterator, Sequence
from typing import NoReturn

from typing_extensions import override

from aiecs_llm.cli import batch, chat, cost, demo, health, models, serve, usage
from aiecs_llm.cli.command import Command
from aiecs_llm.cli.formatting import one_line
from aiecs_llm.config.secrets import redact
from aiecs_llm.errors import ConfigurationError, LLMClientError

PROG = "aiecs-llm"
EXIT_OK = 0
EXIT_FAILURE = 1
"""A provider error or another failure at run time."""
EXIT_USAGE = 2
"""Invalid arguments or configuration."""
EXIT_INTERRUPTED = 130
_HELP_WIDTH = 79
_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
_SILENT = logging.CRITICAL + 1

COMMANDS: dict[str, Command] = {
    "chat": chat.COMMAND,
    "models": models.COMMAND,
    "cost": cost.COMMAND,
    "health": health.COMMAND,
    "usage": usage.COMMAND,
    "batch": batch.COMMAND,
    "serve": serve.COMMAND,
    "demo": demo.COMMAND,
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    @override
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, shared by ``main`` and the docs."""
    parser = _Parser(
        prog=PROG,
        description="One async interface to OpenAI, Anthropic, Google and other LLM providers.",
        epilog="Run 'aiecs-llm COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--debug", action="store_true", help="show log events and tracebacks")
    # --debug is accepted after the command too; SUPPRESS keeps the top-level value otherwise.
    shared = _Parser(add_help=False)
    shared.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show log events and tracebacks",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        examples = "\n".join(f"  {example}" for example in command.examples)
        subparser = commands.add_parser(
            name,
            help=command.summary,
            description=textwrap.fill(command.description, _HELP_WIDTH),
            epilog=f"examples:\n{examples}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[shared],
        )
        command.add_arguments(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error already reported
        return _exit_code(exit_request)
    debug: bool = args.debug
    with _logging_to_stderr(debug=debug):
        return _run(COMMANDS[args.command], args, debug=debug)


def _run(command: Command, args: argparse.Namespace, *, debug: bool) -> int:
    try:
        return command.run(args)
    except ConfigurationError as error:
        return _fail(error, EXIT_USAGE, debug=debug)
    except LLMClientError as error:
        return _fail(error, EXIT_FAILURE, debug=debug)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`aiecs-llm models | head`): nothing to report, but the
        # final flush of stdout at exit must not fail with a traceback either.
        _discard_stdout()
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - the process boundary: one line, type named
        return _fail(error, EXIT_FAILURE, debug=debug)


def _fail(error: Exception, code: int, *, debug: bool) -> int:
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    message = error.message if isinstance(error, LLMClientError) else str(error)
    # Library errors are already free of keys; the patterns also catch any other key-shaped text.
    line = one_line(redact(message)) or "(no message)"
    unexpected = not isinstance(error, LLMClientError) and not debug
    hint = f" (rerun with '{PROG} --debug' for the traceback)" if unexpected else ""
    sys.stderr.write(f"{PROG}: {type(error).__name__}: {line}{hint}\n")
    return code


def _discard_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _exit_code(exit_request: SystemExit) -> int:
    if exit_request.code is None:
        return EXIT_OK
    if isinstance(exit_request.code, int):
        return exit_request.code
    return EXIT_USAGE


@contextlib.contextmanager
def _logging_to_stderr(*, debug: bool) -> Iterator[None]:
    # The CLI is an application, so it may decide where log events go: stderr, and only
    # --debug shows them (the commands report failures themselves, in one line). LiteLLM logs
    # through the standard library with a handler of its own, so its loggers are quietened
    # too. The library never configures logging; what was there is restored for in-process
    # callers.
    import structlog  # here, not at module level: --help needs no logging

    previous = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.CRITICAL
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    quietened = [] if debug else [logging.getLogger(name) for name in _LITELLM_LOGGERS]
    levels = [logger.level for logger in quietened]
    for logger in quietened:
        logger.setLevel(_SILENT)
    try:
        yield
    finally:
        structlog.configure(**previous)
        for logger, level in zip(quietened, levels, strict=True):
            logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
