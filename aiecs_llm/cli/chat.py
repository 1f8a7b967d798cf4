"""``aiecs-llm chat``: one prompt to any model, the answer on stdout, its accounting on stderr."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, TextIO

from aiecs_llm.cli.command import Command
from aiecs_llm.cli.formatting import usd
from aiecs_llm.errors import ConfigurationError

if TYPE_CHECKING:
    from aiecs_llm.types import LLMMessage, LLMResponse, Role


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``chat``."""
    parser.add_argument("prompt", help="the user message; '-' reads it from standard input")
    parser.add_argument(
        "-m",
        "--model",
        help="any LiteLLM model string, e.g. openai/gpt-4o-mini (default: LLM_DEFAULT_MODEL)",
    )
    parser.add_argument("--system", metavar="TEXT", help="a system message sent before the prompt")
    parser.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    parser.add_argument("--temperature", type=float, metavar="T", help="0 to 2")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="limit of output tokens")


def run(args: argparse.Namespace) -> int:
    """Send the prompt and print the answer, then one accounting line on stderr."""
    prompt: str = sys.stdin.read() if args.prompt == "-" else args.prompt
    messages = _messages(prompt, args.system)
    response = asyncio.run(
        _chat(
            messages,
            model=args.model,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            stream=args.stream,
            out=sys.stdout,
        )
    )
    sys.stderr.write(accounting_line(response) + "\n")
    return 0


def _messages(prompt: str, system: str | None) -> list[LLMMessage]:
    from aiecs_llm.types import LLMMessage

    messages = []
    parts: tuple[tuple[Role, str | None, str], ...] = (
        ("system", system, "--system"),
        ("user", prompt, "the prompt"),
    )
    for role, text, name in parts:
        if text is None:
            continue
        if not text.strip():
            raise ConfigurationError(f"{name} is empty")
        try:
            messages.append(LLMMessage(role, text))
        except ValueError:
            raise ConfigurationError(f"{name} is not valid UTF-8 text") from None
    return messages


async def _chat(
    messages: list[LLMMessage],
    *,
    model: str | None,
    temperature: float | None,
    max_tokens: int | None,
    stream: bool,
    out: TextIO,
) -> LLMResponse:
    from aiecs_llm.client.named import create_client

    async with create_client(model) as client:
        if not stream:
            response = await client.generate_text(
                messages, temperature=temperature, max_tokens=max_tokens
            )
            out.write(_with_newline(response.content))
            return response
        chunks = client.stream_text(messages, temperature=temperature, max_tokens=max_tokens)
        last = "\n"
        try:
            async for chunk in chunks:
                out.write(chunk)
                out.flush()
                last = chunk or last
        finally:
            # Whatever happened, the shell prompt (or the error line) starts on a new line.
            if not last.endswith("\n"):
                out.write("\n")
            out.flush()
        return chunks.response


def accounting_line(response: LLMResponse) -> str:
    """``model=openai/gpt-4o-mini-2024-07-18 tokens_in=22 tokens_out=8 cost=$0.0000081
    latency_ms=412`` (and ``first_chunk_ms`` for a stream).
    """
    fields = [
        f"model={response.provider}/{response.model}",
        f"tokens_in={_known(response.prompt_tokens)}",
        f"tokens_out={_known(response.completion_tokens)}",
        f"cost={usd(response.cost_estimate)}",
        f"latency_ms={_milliseconds(response.response_time)}",
    ]
    if response.time_to_first_chunk is not None:
        fields.append(f"first_chunk_ms={_milliseconds(response.time_to_first_chunk)}")
    if response.fallback_from is not None:
        fields.append(f"fallback_from={response.fallback_from}")
    return " ".join(fields)


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _known(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def _milliseconds(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds * 1000:.0f}"


COMMAND = Command(
    summary="send one prompt to any model and print the answer",
    description=(
        "Send one prompt to any LiteLLM model and print the answer on stdout. One line on "
        "stderr follows: model, tokens in and out, cost, latency (and time to the first chunk "
        "when streamed)."
    ),
    examples=(
        'aiecs-llm chat "Explain asyncio in one sentence" -m openai/gpt-4o-mini',
        'aiecs-llm chat "Write a haiku" -m anthropic/claude-sonnet-4-5 --stream',
        "git diff | aiecs-llm chat - --system 'Review this diff' -m gemini/gemini-2.5-flash",
    ),
    add_arguments=add_arguments,
    run=run,
)
