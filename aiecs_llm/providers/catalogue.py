"""Which models each provider offers, what LiteLLM's model map says about them, and the AIECS
spec's choice of an available model: the requested one, else its fallback, else the default.

Everything is read from LiteLLM's bundled map (``litellm.model_cost``) when a method runs, so
importing this module does not import LiteLLM, and models registered at run time are seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

import structlog

from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.providers.spec import ProviderSpec

MODEL_FALLBACK = "llm.model.fallback"
MODEL_DEFAULT = "llm.model.default"
DEPRECATION_NOTICE_DAYS = 30

_Entry = Mapping[str, Any]
_log = structlog.get_logger("aiecs_llm.providers.catalogue")
# LiteLLM's map carries a documentation row whose values are prose, not data.
_TEMPLATE_KEY = "sample_spec"
# "ft:gpt-4o-mini-2024-07-18" rows price fine-tunes ("ft:<base>:<org>::<id>"); not callable as is.
_FINE_TUNE_PREFIX = "ft:"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What LiteLLM's model map says about one model.

    ``model`` is the LiteLLM model string with its provider prefix (``openai/gpt-4o-mini``), as
    is ``successor_model``; ``provider`` is our name (``google`` for ``gemini/``) or LiteLLM's
    for providers we do not register; ``context_window`` is the maximum of input tokens; prices
    are USD per million tokens.
    """

    model: str
    provider: str
    context_window: int | None
    max_output_tokens: int | None
    input_price_per_million: float | None
    output_price_per_million: float | None
    deprecation_date: date | None
    successor_model: str | None
    supports_reasoning: bool

    @property
    def deprecated(self) -> bool:
        """Whether the deprecation date is today or has passed."""
        return self.deprecated_on(date.today())

    def deprecated_on(self, day: date) -> bool:
        """Whether the model is deprecated on ``day``."""
        return self.deprecation_date is not None and self.deprecation_date <= day


class ModelManager:
    """Which models each provider offers, and the spec's choice of an available one.

    Args:
        settings: configuration (``providers.<name>.models``, ``defaults.model``);
            ``LLMSettings.load()`` when omitted.
        fallbacks: for a requested model, the models to try in order when it is unavailable,
            e.g. ``{"gpt-4o": ["gpt-4o-mini"]}``.

    """

    def __init__(
        self,
        settings: LLMSettings | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else LLMSettings.load()
        self.fallbacks: Mapping[str, Sequence[str]] = dict(fallbacks or {})

    def providers(self) -> list[str]:
        """The registered provider names."""
        return [spec.name for spec in _specs().values()]

    def available_models(self, provider: str) -> list[str]:
        """Bare model names a provider offers: the config's ``providers.<name>.models`` in its
        order when set, else the chat models LiteLLM's map lists for the provider, sorted.
        Raises ``ConfigurationError`` for a provider that is not registered.
        """
        spec = _spec(provider)
        if configured := self.settings.provider(provider).models:
            return list(dict.fromkeys(_bare(spec, model) for model in configured))
        listed = {
            _bare(spec, key)
            for key, entry in _model_map().items()
            if _belongs(entry, spec.litellm_provider) and _is_chat(entry)
        }
        return sorted(name for name in listed if not name.startswith(_FINE_TUNE_PREFIX))

    def default_model(self, provider: str) -> str:
        """The config's ``defaults.model`` when it belongs to ``provider``, else the provider's
        built-in default; a bare name either way.
        """
        spec = _spec(provider)
        if chosen := self.settings.defaults.model:
            prefix, slash, rest = chosen.partition("/")
            if slash and prefix == spec.litellm_provider:
                return rest
            if not slash and (
                chosen in self.settings.provider(provider).models
                or _lookup(spec.litellm_provider, chosen, chat=True) is not None
            ):
                return chosen
        return spec.default_model

    async def validate_model(self, provider: str, model: str) -> bool:
        """Whether ``model`` is available for ``provider`` or LiteLLM's map knows it as a chat
        model of that provider.
        """
        spec = _spec(provider)
        name = _bare(spec, model)
        known = _lookup(spec.litellm_provider, name, chat=True) is not None
        return known or name in self.available_models(provider)

    def get_available_model(self, provider: str, requested: str) -> str:
        """The spec's choice, as a bare name: ``requested`` when available, else the first of its
        fallbacks that is, else the provider's default (logging a warning for either).
        """
        spec = _spec(provider)
        name = _bare(spec, requested)
        available = self.available_models(provider)
        if name in available:
            return name
        for fallback in self.fallbacks.get(requested) or self.fallbacks.get(name) or ():
            chosen = _bare(spec, fallback)
            if chosen in available:
                _log.warning(MODEL_FALLBACK, provider=provider, requested=requested, model=chosen)
                return chosen
        default = self.default_model(provider)
        # A config that lists models without the default must not get a model it excluded.
        if default not in available and available:
            default = available[0]
        _log.warning(MODEL_DEFAULT, provider=provider, requested=requested, model=default)
        return default

    def info(self, model: str) -> ModelInfo | None:
        """What LiteLLM's map says about ``model`` (``gpt-4o-mini``, ``openai/gpt-4o-mini``,
        ``gemini/gemini-2.5-flash``), or None when the map does not know it.
        """
        if (found := _resolve(model)) is None:
            return None
        provider, key, entry = found
        ours = _specs().get(provider or "")
        successor = entry.get("successor_model")
        return ModelInfo(
            model=_qualified(provider, key),
            provider=ours.name if ours else provider or str(entry.get("litellm_provider")),
            context_window=_count(entry.get("max_input_tokens")),
            max_output_tokens=_count(entry.get("max_output_tokens")),
            input_price_per_million=_per_million(entry.get("input_cost_per_token")),
            output_price_per_million=_per_million(entry.get("output_cost_per_token")),
            deprecation_date=_day(entry.get("deprecation_date")),
            successor_model=_qualified(provider, successor) if isinstance(successor, str) else None,
            supports_reasoning=entry.get("supports_reasoning") is True,
        )

    def larger_context(
        self, model: str, candidates: Sequence[str], needed_tokens: int
    ) -> str | None:
        """The candidate with the smallest context window that holds ``needed_tokens`` and is
        larger than ``model``'s own (the first such on a tie), or None.
        """
        # Larger than the current window, so that a prompt the provider refused although the
        # estimate fit is never sent back to an equally small model.
        floor = self._window(model) or 0
        fitting = [
            (window, position, candidate)
            for position, candidate in enumerate(candidates)
            if (window := self._window(candidate)) is not None
            and window >= needed_tokens
            and window > floor
        ]
        return min(fitting)[2] if fitting else None

    def deprecation_warning(self, model: str, *, today: date | None = None) -> str | None:
        """A one-line notice when LiteLLM's map dates the model's deprecation in the past or in
        the next ``DEPRECATION_NOTICE_DAYS`` days, naming the date and the successor; else None.
        """
        found = self.info(model)
        if found is None or found.deprecation_date is None:
            return None
        day = today if today is not None else date.today()
        if found.deprecation_date > day + timedelta(days=DEPRECATION_NOTICE_DAYS):
            return None
        when = "was deprecated on" if found.deprecated_on(day) else "will be deprecated on"
        successor = found.successor_model
        then = f"LiteLLM names {successor} as its successor" if successor else "no successor named"
        return f"{found.model} {when} {found.deprecation_date.isoformat()}; {then}"

    def _window(self, model: str) -> int | None:
        return found.context_window if (found := self.info(model)) is not None else None


def _specs() -> dict[str, ProviderSpec]:
    """Our providers' specs by LiteLLM provider name, in registry order."""
    # Imported here: the registry imports the clients, and the clients import this module.
    from aiecs_llm.providers.registry import SPECS_BY_LITELLM_PROVIDER

    return SPECS_BY_LITELLM_PROVIDER


def _spec(provider: str) -> ProviderSpec:
    specs = {spec.name: spec for spec in _specs().values()}
    if provider not in specs:
        known = ", ".join(specs)
        raise ConfigurationError(f"unknown provider {provider!r}; known providers: {known}")
    return specs[provider]


def _model_map() -> Mapping[str, _Entry]:
    # Read directly rather than through get_model_info(): that drops deprecation_date and
    # successor_model, and resolves a bare "gemini-2.5-flash" to the Vertex AI row.
    return cast("Mapping[str, _Entry]", _litellm.litellm().model_cost)


def _belongs(entry: _Entry, provider: str) -> bool:
    # Vertex AI rows say "vertex_ai-language-models", "vertex_ai-anthropic_models", ...
    named = str(entry.get("litellm_provider", ""))
    return named == provider or named.startswith(f"{provider}-")


def _is_chat(entry: _Entry) -> bool:
    # Rows such as "openai/container" are tool prices filed under mode "chat": no token facts.
    has_tokens = entry.get("max_input_tokens") is not None or "input_cost_per_token" in entry
    return entry.get("mode") == "chat" and has_tokens


def _lookup(provider: str, name: str, *, chat: bool = False) -> tuple[str, _Entry] | None:
    """The map's (key, entry) for ``name`` under a LiteLLM provider, or None."""
    # Gemini rows are keyed "gemini/<name>", OpenAI's and Anthropic's by the bare name.
    for key in (f"{provider}/{name}", name):
        entry = _model_map().get(key)
        if entry is not None and _belongs(entry, provider) and (_is_chat(entry) or not chat):
            return key, entry
    return None


def _resolve(model: str) -> tuple[str | None, str, _Entry] | None:
    """(LiteLLM provider, map key, map entry) for a model string, or None; the provider is None
    for a bare name that only other providers' rows know, whose key LiteLLM routes by itself.
    """
    prefix, slash, rest = model.partition("/")
    if slash and (found := _lookup(prefix, rest)) is not None:
        return prefix, *found
    # A bare name tries our providers first: the map's bare "gemini-2.5-flash" is Vertex AI's.
    for provider in _specs():
        if (found := _lookup(provider, model)) is not None:
            return provider, *found
    entry = None if model == _TEMPLATE_KEY else _model_map().get(model)
    return (None, model, entry) if entry is not None else None


def _bare(spec: ProviderSpec, model: str) -> str:
    return model.removeprefix(f"{spec.litellm_provider}/")


def _qualified(provider: str | None, key: str) -> str:
    return key if provider is None or key.startswith(f"{provider}/") else f"{provider}/{key}"


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _per_million(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    # Through Decimal so 1.5e-07 per token reads 0.15 per million, not 0.15000000000000002.
    return float(Decimal(repr(value)).scaleb(6))


def _day(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:  # the map's template row holds prose where the date goes
        return None
