"""``aiecs-llm cost``: what a call with so many tokens costs, before making it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiecs_llm.cli.command import Command
from aiecs_llm.cli.formatting import count, usd
from aiecs_llm.errors import ConfigurationError, ModelNotFoundError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``cost``."""
    parser.add_argument("-m", "--model", required=True, help="any LiteLLM model string")
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--input-tokens", type=_tokens, metavar="N", help="prompt tokens")
    prompt.add_argument(
        "--text", metavar="FILE", help="a prompt file, counted with the model's tokenizer"
    )
    parser.add_argument(
        "--output-tokens", type=_tokens, default=0, metavar="M", help="completion tokens"
    )


def run(args: argparse.Namespace) -> int:
    """Print the estimate in USD, with the token counts and prices it is made of."""
    from aiecs_llm.accounting import pricing
    from aiecs_llm.config.settings import LLMSettings
    from aiecs_llm.providers import engine as _litellm
    from aiecs_llm.providers.catalogue import ModelManager
    from aiecs_llm.providers.resolution import provider_of

    model: str = args.model
    output_tokens: int = args.output_tokens
    settings = LLMSettings.load()
    try:
        _, provider = provider_of(model)
    except ModelNotFoundError as error:  # offline, an unknown model string is a usage mistake
        raise ConfigurationError(error.message) from error
    if args.text is not None:
        input_tokens = pricing.count_tokens(model, text=_read(Path(args.text)))
        counted = f" (counted in {args.text} with the model's tokenizer)"
    else:
        input_tokens, counted = args.input_tokens, ""
    override = pricing.override_for(settings.costs, model, model.split("/", 1)[-1])
    info = ModelManager(settings).info(model)
    usage = _litellm.litellm().Usage(
        prompt_tokens=input_tokens,
        completion_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    estimate = pricing.usage_cost(
        usage=usage, models=[model], provider=provider, overrides=settings.costs
    )
    if estimate is None:
        raise ConfigurationError(
            f'no price known for {model}: add a [costs."{model}"] entry (USD per 1,000 tokens) '
            "to the config file"
        )
    input_price: float | None
    output_price: float | None
    if override is not None:  # the config's prices are per 1,000 tokens
        input_price, output_price = override.input * 1000, override.output * 1000
        source = "config [costs] override"
    else:
        input_price = info.input_price_per_million if info is not None else None
        output_price = info.output_price_per_million if info is not None else None
        source = "LiteLLM prices"
    lines = [
        f"model     {info.model if info is not None else model}",
        f"tokens    {count(input_tokens)} input{counted} + {count(output_tokens)} output",
        f"prices    {_per_million(input_price)} input, {_per_million(output_price)} output "
        f"per 1M tokens ({source})",
        f"estimate  {usd(estimate)}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _tokens(value: str) -> int:
    try:
        tokens = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if tokens < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return tokens


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None


def _per_million(price: float | None) -> str:
    return "unknown" if price is None else usd(price)


COMMAND = Command(
    summary="estimate the USD cost of a call from token counts or a prompt file",
    description=(
        "Estimate what a call costs: prompt tokens given or counted in a file with the model's "
        "tokenizer, plus the expected output tokens, at LiteLLM's prices (a [costs] entry in "
        "the config file overrides them). No network."
    ),
    examples=(
        "aiecs-llm cost -m openai/gpt-4o-mini --input-tokens 1000 --output-tokens 500",
        "aiecs-llm cost -m anthropic/claude-sonnet-4-5 --text prompt.txt --output-tokens 800",
    ),
    add_arguments=add_arguments,
    run=run,
)
