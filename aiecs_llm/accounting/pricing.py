"""Token counts and prices.

Prices come from LiteLLM's bundled cost map (so cached-token and reasoning-token pricing follow
LiteLLM), unless the configuration gives a per-1K override for the model. Pricing is best effort:
an unknown model costs ``None`` and one warning, never a failed generation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from aiecs_llm.config.settings import TokenPrice
from aiecs_llm.providers import engine as _litellm

_log = structlog.get_logger("aiecs_llm.accounting.pricing")
_warned_unpriced: set[str] = set()

CHARS_PER_TOKEN = 4
"""The rough rule for English text that ``estimate_tokens`` uses."""


def estimate_tokens(text: str) -> int:
    """About four characters a token, rounded up: no tokenizer, no LiteLLM import."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def count_tokens(
    model: str, messages: Sequence[Mapping[str, str]] | None = None, text: str | None = None
) -> int:
    """The model's own tokenizer count (tiktoken / the provider's tokenizer via LiteLLM), with
    the chat template's per-message overhead when ``messages`` are given.
    """
    return int(_litellm.litellm().token_counter(model=model, messages=messages, text=text))


def price_per_1k(
    input_tokens: int, output_tokens: int, price: TokenPrice | Mapping[str, float]
) -> float:
    """The spec's formula: (input * input price + output * output price) / 1000."""
    if isinstance(price, TokenPrice):
        input_price, output_price = price.input, price.output
    else:
        input_price, output_price = price["input"], price["output"]
    return (input_tokens * input_price + output_tokens * output_price) / 1000


def override_for(overrides: Mapping[str, TokenPrice], *candidates: str | None) -> TokenPrice | None:
    """The configured price for the first candidate name that has one."""
    for name in candidates:
        if name and name in overrides:
            return overrides[name]
    return None


def usage_cost(
    *,
    usage: Any,
    models: Sequence[str],
    provider: str,
    overrides: Mapping[str, TokenPrice],
) -> float | None:
    """USD for one call's LiteLLM ``Usage``, trying each model name (the provider's dated name
    first, then the one requested); None when no price is known.
    """
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    bare_names = [name.split("/", 1)[-1] for name in models]
    price = override_for(overrides, *models, *bare_names)
    if price is not None:
        return price_per_1k(prompt, completion, price)
    cost_per_token = _litellm.litellm().cost_per_token
    for model in models:
        # LiteLLM prices a model missing from its map at (0.0, 0.0) rather than failing: an
        # unknown price must stay unknown, not become free.
        if not is_priced(model, provider):
            continue
        try:
            prompt_cost, completion_cost = cost_per_token(
                model=model, custom_llm_provider=provider, usage_object=usage
            )
        except Exception:  # noqa: BLE001 - LiteLLM raises bare Exception for unmapped models.
            continue
        return float(prompt_cost + completion_cost)
    _warn_unpriced(models[-1] if models else "?", provider)
    return None


def is_priced(model: str, provider: str | None = None) -> bool:
    """Whether LiteLLM's map has input and output prices for ``model``."""
    info = _litellm.model_info(model, provider) or {}
    return info.get("input_cost_per_token") is not None and (
        info.get("output_cost_per_token") is not None
    )


def _warn_unpriced(model: str, provider: str) -> None:
    if model in _warned_unpriced:
        return
    _warned_unpriced.add(model)
    _log.warning(
        "llm.cost.unknown_model",
        model=model,
        provider=provider,
        hint=f'add [costs."{model}"] with input and output (USD per 1,000 tokens) to the '
        "config file to track its spend",
    )


def billed_input_tokens(
    model: str, messages: Sequence[Mapping[str, Any]], parameters: Mapping[str, Any]
) -> int:
    """What the provider bills as input for a request, counted by ``model``'s tokenizer: the
    messages plus the schemas sent with them (tool definitions, a structured-output schema),
    each counted as its JSON text.
    """
    count = count_tokens(model, messages=messages)
    for name in _SCHEMA_PARAMETERS:
        value = parameters.get(name)
        if value:
            count += count_tokens(model, text=_as_json(value))
    return count


def completions_asked(parameters: Mapping[str, Any]) -> int:
    """How many completions the request asks for (``n``); each is billed its own output."""
    n = parameters.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


_LONG_CONTEXT = 200_000
# Request parameters whose text the provider reads (and bills) as input.
_SCHEMA_PARAMETERS = ("tools", "functions", "response_format")


def _as_json(value: object) -> str:
    schema = getattr(value, "model_json_schema", None)  # a pydantic model class
    if callable(schema):
        value = schema()
    return json.dumps(value, default=str, sort_keys=True)


def worst_case_cost(
    models: Sequence[str],
    *,
    prompt_tokens: int,
    max_tokens: int | None,
    overrides: Mapping[str, TokenPrice],
    completions: int = 1,
) -> float | None:
    """The most a call can cost on any of ``models`` (LiteLLM model strings): its prompt plus
    ``completions`` times ``max_tokens`` (else the model's output limit) at the model's prices.
    None when no model of the list has a known price.
    """
    costs = []
    for model in models:
        info = _litellm.model_info(model) or {}
        output_limit = completions * int(
            max_tokens
            if max_tokens is not None
            else info.get("max_output_tokens") or info.get("max_tokens") or 0
        )
        price = override_for(overrides, model, model.split("/", 1)[-1])
        if price is not None:
            costs.append(price_per_1k(prompt_tokens, int(output_limit), price))
            continue
        # Prompts past 200k tokens are billed at the long-context tier where the model has one.
        tier = "_above_200k_tokens" if prompt_tokens > _LONG_CONTEXT else ""
        input_price = info.get(f"input_cost_per_token{tier}", info.get("input_cost_per_token"))
        output_price = info.get(f"output_cost_per_token{tier}", info.get("output_cost_per_token"))
        if input_price is None or output_price is None:
            continue
        costs.append(prompt_tokens * float(input_price) + int(output_limit) * float(output_price))
    return max(costs) if costs else None
