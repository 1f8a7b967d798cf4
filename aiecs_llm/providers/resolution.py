"""From a model string to a provider: which registered provider serves it, and what it accepts."""

from __future__ import annotations

from functools import cache

from aiecs_llm.errors import ModelNotFoundError
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.providers.registry import SPECS_BY_LITELLM_PROVIDER
from aiecs_llm.providers.spec import ProviderSpec


def registered_spec(litellm_provider: str | None) -> ProviderSpec | None:
    """The registered provider behind a LiteLLM provider prefix, if any."""
    if litellm_provider is None:
        return None
    return SPECS_BY_LITELLM_PROVIDER.get(litellm_provider)


def client_class_name(spec: ProviderSpec) -> str:
    """The named client for a provider, for messages that tell the caller what to pass."""
    return spec.client_class


def prefix_of(model: str | None) -> str | None:
    """``"anthropic"`` for ``"anthropic/claude-sonnet-4-5"``; None without a prefix."""
    return model.split("/", 1)[0] if model and "/" in model else None


@cache
def provider_of(litellm_model: str) -> tuple[str, str]:
    """(model name, LiteLLM provider) for a LiteLLM model string, or ``ModelNotFoundError``."""
    try:
        return _litellm.provider_of(litellm_model)
    except Exception as exc:
        raise ModelNotFoundError(
            f"no provider known for model {litellm_model!r}: use a LiteLLM model string "
            "such as 'openai/gpt-4o-mini', 'anthropic/claude-sonnet-4-5' or "
            "'gemini/gemini-2.5-flash'",
            model=litellm_model,
        ) from exc


@cache
def accepts_temperature(model: str, provider: str) -> bool:
    """Whether a default temperature may be sent to this model.

    OpenAI's reasoning models (o1, o3, gpt-5, ...) reject any temperature but 1, so a default is
    not sent to them; an explicit one still is, and the provider decides. LiteLLM lists
    "temperature" as supported for them, so its reasoning flag is what tells them apart.
    """
    if provider != "openai":
        return True
    try:
        return not _litellm.litellm().supports_reasoning(model=model)
    except Exception:  # noqa: BLE001 - an unmapped model: assume the common case
        return True
