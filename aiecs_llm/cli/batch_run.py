"""``aiecs-llm batch input.jsonl -o output.jsonl``: run a JSONL file of prompts, resumably.

Each finished item is appended to the output at once (flushed and fsynced), so an interrupted
or killed run loses nothing it paid for. A rerun skips the ids already ``ok`` in the output,
retries the others, and compacts the file at the end so that each id appears exactly once
(latest result wins), in input order. See ``docs/batch.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiecs_llm.errors import ConfigurationError

# The batch machinery (pydantic models, the clients) is imported when the command runs, so
# that `aiecs-llm --help` does not pay for it.
if TYPE_CHECKING:
    from aiecs_llm.cli.batch_files import ResultsFile
    from aiecs_llm.client.batch import BatchProgress, BatchRequest

HELP = "run a JSONL file of prompts concurrently; resumable, one result line per item"
DESCRIPTION = (
    "Send every prompt of INPUT (JSONL: {'id', 'prompt' | 'messages', optional 'model', "
    "'temperature', 'max_tokens'} per line) and append one result line per item to OUTPUT. "
    "Rerun the same command to resume: ids already ok are skipped, failed ones retried."
)
EXAMPLES = (
    "aiecs-llm batch questions.jsonl -o answers.jsonl -m openai/gpt-4o-mini",
    "aiecs-llm batch questions.jsonl -o answers.jsonl --concurrency 16 --temperature 0",
    "aiecs-llm batch questions.jsonl -o answers.jsonl   # again: resume, retry failed items",
)
EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``batch`` command's arguments to ``parser``."""
    parser.add_argument("input", type=Path, help="JSONL file, one prompt per line")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSONL results file")
    parser.add_argument("-m", "--model", help="model or provider (default: LLM_DEFAULT_MODEL)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    parser.add_argument("--temperature", type=float, help="default for lines that set none")
    parser.add_argument("--max-tokens", type=int, help="default for lines that set none")
    parser.add_argument("--system", help="system message put before each line's conversation")


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code (0 all ok, 1 some failed or not run, 2 bad
    input, 130 interrupted).
    """
    from aiecs_llm.cli.batch_files import InputError, ResultsFile, read_input

    try:
        _check_arguments(args)
        requests = read_input(
            args.input, system=args.system, temperature=args.temperature, max_tokens=args.max_tokens
        )
        results = ResultsFile(args.output)
    except InputError as error:
        sys.stderr.write(f"aiecs-llm batch: {error}\n")
        return EXIT_BAD_INPUT
    todo = [request for request in requests if request.id not in results.ok_ids]
    try:
        outcome = asyncio.run(_run_batch(args.model, todo, args.concurrency, results))
    except KeyboardInterrupt:
        results.close()
        sys.stderr.write(
            f"aiecs-llm batch: interrupted; finished items are saved in {args.output}: "
            "run the same command again to resume\n"
        )
        return EXIT_INTERRUPTED
    except ConfigurationError as error:  # the client could not be made: no key, say
        results.close()
        sys.stderr.write(f"aiecs-llm batch: {error.message}\n")
        return EXIT_BAD_INPUT
    results.compact([request.id for request in requests])
    sys.stderr.write(_summary(outcome, len(requests) - len(todo), args.output))
    return EXIT_OK if outcome.ok == outcome.total else EXIT_FAILURES


def _check_arguments(args: argparse.Namespace) -> None:
    from aiecs_llm.cli.batch_files import InputError

    if args.concurrency < 1:
        raise InputError("--concurrency must be 1 or more")
    if args.temperature is not None and not 0 <= args.temperature <= 2:
        raise InputError("--temperature must be from 0 to 2")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise InputError("--max-tokens must be 1 or more")
    if args.output.resolve() == args.input.resolve():
        raise InputError("the output must not be the input file")


async def _run_batch(
    model: str | None, todo: list[BatchRequest], concurrency: int, results: ResultsFile
) -> BatchProgress:
    from aiecs_llm.client.batch import BatchProgress, batch_generate
    from aiecs_llm.client.named import create_client

    final = BatchProgress(0, 0, 0, 0, len(todo), 0.0, 0)
    if not todo:  # everything is done already: no client, so no key, needed
        return final
    client = create_client(model)
    display = _display(len(todo))

    def progress(counts: BatchProgress) -> None:
        nonlocal final
        final = counts
        display(counts)

    try:
        async with client:
            await batch_generate(
                client,
                todo,
                concurrency=concurrency,
                progress=progress,
                on_result=lambda _, result: results.append(result),
            )
    finally:
        display(None)
    return final


def _display(total: int) -> Callable[[BatchProgress | None], None]:
    """A progress display on stderr, called with the counts after each item and with None at
    the end: a rich bar on a terminal (when rich is installed), else a line every few seconds.
    """
    if sys.stderr.isatty():  # on a log file or a pipe a bar would only garble the output
        try:
            return _rich_display(total)
        except ImportError:
            pass
    last = 0.0

    def plain(counts: BatchProgress | None) -> None:
        nonlocal last
        if counts is not None and (time.monotonic() - last >= 2 or counts.done == total):
            last = time.monotonic()
            sys.stderr.write(
                f"batch: {counts.done}/{total} done, {counts.errors} errors, "
                f"{counts.not_run} not run, ${counts.cost:.4f}\n"
            )
            sys.stderr.flush()

    return plain


def _rich_display(total: int) -> Callable[[BatchProgress | None], None]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[errors]} errors  ${task.fields[cost]:.4f}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("batch", total=total, errors=0, cost=0.0)
    bar.start()

    def show(counts: BatchProgress | None) -> None:
        if counts is None:
            bar.stop()
        else:
            bar.update(task, completed=counts.done, errors=counts.errors, cost=counts.cost)

    return show


def _summary(counts: BatchProgress, skipped: int, output: Path) -> str:
    text = (
        f"aiecs-llm batch: {counts.ok} ok, {counts.errors} errors, {counts.not_run} not run, "
        f"{skipped} skipped (already ok); {counts.tokens:,} tokens, ${counts.cost:.4f}; "
        f"results in {output}\n"
    )
    if counts.errors or counts.not_run:
        text += "aiecs-llm batch: run the same command again to retry the items not ok\n"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command on its own (``python -m aiecs_llm.cli.batch_run``)."""
    import structlog

    parser = argparse.ArgumentParser(prog="aiecs-llm batch", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    # An application entry point may route log events: stderr, errors only, as `aiecs-llm`
    # does; stdout stays free.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
