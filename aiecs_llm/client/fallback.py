"""Who answers a call: the fallback chain, key rotation, the circuit breaker and the limits around
each attempt, with the retry layer inside each model of the chain.

For each model of the chain, in order: attempts (with retries) pick the next usable key, skip a
route whose circuit is open, wait for the provider's concurrency and rate limits, then send. A
model that cannot answer (not found, unavailable, rate limits exhausted, circuit open) hands over
to the next model of the chain; a prompt too long for its context window hands over to the next
model whose window holds it. Everything else is the caller's error and ends the call at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

import structlog

from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    ContextWindowExceededError,
    LLMClientError,
    ModelNotFoundError,
    ProviderNotAvailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
)
from aiecs_llm.providers.catalogue import ModelManager
from aiecs_llm.resilience.breaker import CircuitBreaker, Route
from aiecs_llm.resilience.hedging import LatencyTracker
from aiecs_llm.resilience.keys import KeyPool
from aiecs_llm.resilience.retry import call_with_retries, is_retryable
from aiecs_llm.resilience.state import ProviderLimits
from aiecs_llm.transport.call import PreparedCall

T = TypeVar("T")
_log = structlog.get_logger("aiecs_llm.client.fallback")


@dataclass(frozen=True, slots=True)
class Target:
    """One model of the chain, resolved to where it goes and with which keys."""

    litellm_model: str
    model: str
    litellm_provider: str
    provider: str
    keys: KeyPool | None
    """Several keys to rotate through; None with one key or none."""
    key: str | None = field(repr=False)
    """The only key, when there is exactly one."""
    base_url: str | None
    limits: ProviderLimits


@dataclass(slots=True)
class Answer(Generic[T]):
    """A successful attempt: its result, the call that produced it, and what it took."""

    value: T
    call: PreparedCall
    lease: AsyncExitStack
    """Holds the provider's concurrency slot; close it when the answer has been consumed."""
    fallback_from: str | None
    """The model first asked for, when another one answered."""


BuildCall = Callable[[Target, str | None], PreparedCall]
Attempt = Callable[[PreparedCall], Awaitable[T]]


class Router:
    """Runs one call through its chain of models; one per client."""

    def __init__(
        self, *, breaker: CircuitBreaker, models: ModelManager, latencies: LatencyTracker
    ) -> None:
        self.breaker = breaker
        self.models = models
        self.latencies = latencies

    async def run(
        self,
        chain: Sequence[Callable[[], Target]],
        build_call: BuildCall,
        attempt: Attempt[T],
        *,
        max_retries: int,
        deadline: float,
        max_retry_after: float,
        prompt_tokens: int,
    ) -> Answer[T]:
        """Try the chain's models in order until one answers; raise the last error otherwise."""
        resolved: list[Target | None] = [None] * len(chain)
        first_model: str | None = None
        index = 0
        while index < len(chain):
            target = self._resolve(chain, resolved, index)
            if target is None:
                index += 1
                continue
            first_model = first_model or target.litellm_model
            try:
                answer = await call_with_retries(
                    partial(self._attempt, target, build_call, attempt),
                    max_retries=max_retries,
                    deadline=deadline,
                    provider=target.provider,
                    model=target.model,
                    retryable=partial(_worth_retrying, target=target),
                    wait_hint=partial(_ready_key_wait, target=target),
                    max_retry_after=max_retry_after,
                )
            except ContextWindowExceededError as error:
                index = self._larger_window(chain, resolved, index, prompt_tokens, error)
                continue
            except LLMClientError as error:
                if not _hands_over(error) or index == len(chain) - 1:
                    raise
                _log.warning(
                    "llm.request.fallback",
                    provider=target.provider,
                    model=target.model,
                    reason=type(error).__name__,
                    status_code=error.status_code,
                )
                index += 1
                continue
            fallback_from = first_model if first_model != target.litellm_model else None
            answer.fallback_from = fallback_from
            return answer
        raise ConfigurationError("no usable model in the chain: check keys and fallbacks")

    async def _attempt(
        self, target: Target, build_call: BuildCall, attempt: Attempt[T]
    ) -> Answer[T]:
        key = target.keys.choose() if target.keys else target.key
        route = Route(target.provider, target.model, fingerprint(key) if key else None)
        if not self.breaker.allow(route):
            raise CircuitOpenError(
                f"{route.label} failed repeatedly; resting for "
                f"{self.breaker.retry_in(route):.0f}s before it is tried again",
                provider=target.provider,
                model=target.model,
                retry_after=self.breaker.retry_in(route),
                code="circuit_open",
            )
        call = build_call(target, key)
        started = time.monotonic()
        lease = AsyncExitStack()
        reservation = None
        try:
            reservation = await lease.enter_async_context(target.limits.hold(call.token_estimate))
            value = await attempt(call)
        except BaseException as error:
            await lease.aclose()
            if reservation is not None:
                reservation.settle(0)  # a failed attempt is billed nothing
            self._learn_from(error, route, target, key)
            raise
        self.breaker.record_success(route)
        self.latencies.record(target.litellm_model, time.monotonic() - started)
        if target.keys and key:
            target.keys.succeeded(key)
        call.reservation = reservation
        return Answer(value=value, call=call, lease=lease, fallback_from=None)

    def _learn_from(
        self, error: BaseException, route: Route, target: Target, key: str | None
    ) -> None:
        """What a failed attempt teaches the key pool and the breaker."""
        if not isinstance(error, LLMClientError) or error.status_code is None:
            return  # cancelled, or refused locally before any answer: nothing learned
        if isinstance(error, ProviderNotAvailableError):
            self.breaker.record_failure(route)
            return
        # The provider answered, so the route is up, whatever it thought of the request.
        self.breaker.record_success(route)
        if target.keys is None or key is None:
            return
        if isinstance(error, RateLimitError) and not isinstance(
            error, QuotaExceededError | RequestTooLargeError
        ):
            target.keys.rate_limited(key, error.retry_after)
        elif isinstance(error, AuthenticationError):
            target.keys.rejected(key)

    def _resolve(
        self, chain: Sequence[Callable[[], Target]], resolved: list[Target | None], index: int
    ) -> Target | None:
        if resolved[index] is None:
            try:
                resolved[index] = chain[index]()
            except ConfigurationError as error:
                if index == 0:
                    raise
                # A fallback that cannot be used (no key for its provider) must not hide the
                # failure that led to it; it is skipped with a warning.
                _log.warning("llm.fallback.unusable", position=index, reason=error.message)
        return resolved[index]

    def _larger_window(
        self,
        chain: Sequence[Callable[[], Target]],
        resolved: list[Target | None],
        index: int,
        prompt_tokens: int,
        error: ContextWindowExceededError,
    ) -> int:
        later = [self._resolve(chain, resolved, i) for i in range(index + 1, len(chain))]
        names = [target.litellm_model for target in later if target is not None]
        current = resolved[index]
        model = current.litellm_model if current else ""
        bigger = self.models.larger_context(model, names, prompt_tokens)
        if bigger is None:
            raise error
        _log.warning(
            "llm.request.fallback", model=model, reason="ContextWindowExceededError", to=bigger
        )
        return next(
            i
            for i in range(index + 1, len(chain))
            if (candidate := resolved[i]) is not None and candidate.litellm_model == bigger
        )


def _hands_over(error: LLMClientError) -> bool:
    """Whether the next model of the chain may succeed where this one failed."""
    if isinstance(error, QuotaExceededError):
        return True  # this account is out of credit for this provider; another may not be
    return isinstance(error, ModelNotFoundError | ProviderNotAvailableError | RateLimitError)


def _worth_retrying(error: BaseException, target: Target) -> bool:
    if isinstance(error, CircuitOpenError):
        return False  # go to the next model instead of waiting out the cooldown
    if isinstance(error, AuthenticationError | RateLimitError) and _another_key_ready(target):
        return True  # a rejected or resting key is out of rotation; another one may do
    return is_retryable(error)


def _ready_key_wait(error: BaseException, target: Target) -> float | None:
    # With another key ready, a key's rate limit is no reason to wait.
    if isinstance(error, RateLimitError | AuthenticationError) and _another_key_ready(target):
        return 0.0
    return None


def _another_key_ready(target: Target) -> bool:
    return target.keys is not None and target.keys.has_usable_key()
