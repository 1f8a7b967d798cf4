"""Is a provider usable right now? Key checks and live health checks.

A live check is the cheapest real request there is: one output token from the provider's
default model (a fraction of a cent), never answered from the response cache. Without
``live=True`` nothing is sent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from aiecs_llm.client.named import PROVIDERS, ProviderClient
from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.errors import AuthenticationError, ConfigurationError, LLMClientError
from aiecs_llm.types import LLMMessage

HEALTH_CHECK_TIMEOUT = 15.0
"""Seconds a live check may take before the provider is reported unhealthy."""

_PING = (LLMMessage("user", "Reply with the single word: ok"),)
_log = structlog.get_logger("aiecs_llm.client.health")


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """One provider's health, safe to print or export: the key appears only as a fingerprint."""

    provider: str
    key_present: bool
    key_fingerprint: str | None
    """``sha256:…`` of the first configured key."""
    keys: int
    """How many keys are configured for rotation."""
    live: bool | None
    """The live check's result; None when it was not run."""
    latency_ms: float | None
    model: str | None
    error: str | None
    """The error class and message of a failed live check."""


async def validate_api_key(
    provider: str,
    api_key: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    timeout: float = HEALTH_CHECK_TIMEOUT,
) -> bool:
    """Whether the provider accepts ``api_key``, by one minimal live request.

    False when the key is rejected or the check fails for another reason (logged with the
    reason, never the key).
    """
    client_class = _client_class(provider)
    settings = LLMSettings()  # only the key given here, never the machine's configuration
    try:
        async with client_class(
            api_key, base_url, model=model, timeout=timeout, max_retries=0, settings=settings
        ) as client:
            await client.generate_text(list(_PING), max_tokens=1, temperature=0, cache="bypass")
    except AuthenticationError:
        return False
    except LLMClientError as error:
        _log.warning(
            "llm.key.unverified",
            provider=provider,
            key=fingerprint(api_key),
            reason=type(error).__name__,
            detail=error.message[:200],
        )
        return False
    return True


async def health_check(
    settings: LLMSettings | None = None,
    *,
    live: bool = True,
    timeout: float = HEALTH_CHECK_TIMEOUT,
) -> dict[str, ProviderHealth]:
    """Per registered provider: whether a key is configured and, with ``live``, whether a
    minimal request succeeds and how long it took. Checks run concurrently.
    """
    settings = settings if settings is not None else LLMSettings.load()
    names = list(PROVIDERS)
    results = await asyncio.gather(
        *(_check(name, settings, live=live, timeout=timeout) for name in names)
    )
    return dict(zip(names, results, strict=True))


async def _check(name: str, settings: LLMSettings, *, live: bool, timeout: float) -> ProviderHealth:
    configured = settings.provider(name)
    keys = [key.get_secret_value() for key in configured.all_keys()]
    usable = bool(keys) or configured.base_url is not None
    health = ProviderHealth(
        provider=name,
        key_present=bool(keys),
        key_fingerprint=fingerprint(keys[0]) if keys else None,
        keys=len(keys),
        live=None,
        latency_ms=None,
        model=None,
        error=None,
    )
    if not live or not usable:
        return health
    started = time.monotonic()
    try:
        async with PROVIDERS[name](timeout=timeout, max_retries=0, settings=settings) as client:
            response = await client.generate_text(
                list(_PING), max_tokens=1, temperature=0, cache="bypass"
            )
    except LLMClientError as error:
        return _with(health, live=False, started=started, error=error)
    return _with(health, live=True, started=started, model=response.model)


def _with(
    health: ProviderHealth,
    *,
    live: bool,
    started: float,
    model: str | None = None,
    error: LLMClientError | None = None,
) -> ProviderHealth:
    return ProviderHealth(
        provider=health.provider,
        key_present=health.key_present,
        key_fingerprint=health.key_fingerprint,
        keys=health.keys,
        live=live,
        latency_ms=round((time.monotonic() - started) * 1000, 1),
        model=model,
        error=None if error is None else f"{type(error).__name__}: {error.message[:200]}",
    )


def _client_class(provider: str) -> type[ProviderClient]:
    if provider not in PROVIDERS:
        known = ", ".join(PROVIDERS)
        raise ConfigurationError(f"unknown provider {provider!r}; known: {known}")
    return PROVIDERS[provider]
