"""``aiecs-llm models``: the chat models each provider offers, from LiteLLM's bundled map."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import TYPE_CHECKING, Any

from aiecs_llm.cli.command import Command
from aiecs_llm.cli.formatting import count, table, usd
from aiecs_llm.errors import ConfigurationError

if TYPE_CHECKING:
    from aiecs_llm.providers.catalogue import ModelInfo

_HEADERS = ("MODEL", "CONTEXT", "INPUT $/1M", "OUTPUT $/1M", "STATUS")
_NUMERIC_COLUMNS = {1, 2, 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``models``."""
    parser.add_argument("--provider", metavar="P", help="only this provider (openai, ...)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print the models with context window, prices and deprecation."""
    from aiecs_llm.client.named import PROVIDERS
    from aiecs_llm.config.settings import LLMSettings
    from aiecs_llm.providers.catalogue import ModelManager

    if args.provider is not None and args.provider not in PROVIDERS:
        raise ConfigurationError(
            f"unknown provider {args.provider!r}; known providers: {', '.join(PROVIDERS)}"
        )
    manager = ModelManager(LLMSettings.load())
    listed: list[tuple[str, ModelInfo | None]] = []
    for provider in [args.provider] if args.provider else list(PROVIDERS):
        prefix = PROVIDERS[provider].spec.litellm_provider
        for name in manager.available_models(provider):
            model = f"{prefix}/{name}"
            listed.append((model, manager.info(model)))
    today = _today()
    if args.json:
        documents = [_document(model, info, today) for model, info in listed]
        sys.stdout.write(json.dumps(documents, indent=2) + "\n")
    else:
        rows = [_row(model, info, today) for model, info in listed]
        sys.stdout.write(table(_HEADERS, rows, right=_NUMERIC_COLUMNS))
    return 0


def _today() -> date:
    return date.today()


def _row(model: str, info: ModelInfo | None, today: date) -> list[str]:
    if info is None:
        return [model, "-", "-", "-", "not in LiteLLM's map"]
    return [
        info.model,
        count(info.context_window),
        _price(info.input_price_per_million),
        _price(info.output_price_per_million),
        status(info, today),
    ]


def status(info: ModelInfo, today: date) -> str:
    """``DEPRECATED since 2026-10-23, successor openai/gpt-5.6-sol``, ``deprecated from
    2027-01-14, successor ...`` for a scheduled date, or empty.
    """
    if info.deprecation_date is None:
        return ""
    day = info.deprecation_date.isoformat()
    when = f"DEPRECATED since {day}" if info.deprecated_on(today) else f"deprecated from {day}"
    successor = info.successor_model or "none named"
    return f"{when}, successor {successor}"


def _document(model: str, info: ModelInfo | None, today: date) -> dict[str, Any]:
    if info is None:
        return {"model": model, "known": False}
    return {
        "model": info.model,
        "provider": info.provider,
        "known": True,
        "context_window": info.context_window,
        "max_output_tokens": info.max_output_tokens,
        "input_price_per_million": info.input_price_per_million,
        "output_price_per_million": info.output_price_per_million,
        "deprecated": info.deprecated_on(today),
        "deprecation_date": info.deprecation_date.isoformat() if info.deprecation_date else None,
        "successor_model": info.successor_model,
        "supports_reasoning": info.supports_reasoning,
    }


def _price(per_million: float | None) -> str:
    return "-" if per_million is None else usd(per_million)


COMMAND = Command(
    summary="list the chat models with context window, prices and deprecations (offline)",
    description=(
        "List the chat models each provider offers (the config's providers.<name>.models, or "
        "every chat model in LiteLLM's bundled map), with context window, USD per million "
        "input and output tokens, and deprecation dates with the successor model. No network."
    ),
    examples=("aiecs-llm models", "aiecs-llm models --provider anthropic --json"),
    add_arguments=add_arguments,
    run=run,
)
