"""The one retry layer (LiteLLM's and the OpenAI SDK's own retries are switched off).

Only failures that waiting can fix are retried: rate limits and an unavailable provider (5xx,
529, connection errors, timeouts). Caller mistakes (400, 401, 403, 404, 422) and an exhausted
quota fail at once. The wait is exponential with jitter, or what the server asked for in
``retry-after`` when it asked, up to a cap; a server that asks for more than the cap, or more than
the time left before the call's deadline, gets an immediate error rather than a long sleep.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_base,
    retry_if_exception,
    stop_after_attempt,
)
from typing_extensions import override

from aiecs_llm.errors import (
    LLMClientError,
    ProviderNotAvailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    StreamInterruptedError,
)

INITIAL_RETRY_DELAY = 0.5
"""Seconds before the first retry when the server gave no retry-after."""
MAX_RETRY_DELAY = 8.0
"""Cap of the exponential backoff."""
MAX_RETRY_AFTER = 60.0
"""Longest server-requested wait we honour; a longer retry-after fails at once."""

_log = structlog.get_logger("aiecs_llm.resilience.retry")


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: the base doubles with each attempt, and up to one more
    base is added at random so that clients failing together do not retry together.

    Computed here rather than with tenacity's ``wait_exponential_jitter``, whose arguments
    changed meaning between the tenacity releases the declared range allows.
    """
    base = INITIAL_RETRY_DELAY * 2.0 ** min(attempt - 1, 32)
    return min(base + random.uniform(0, INITIAL_RETRY_DELAY), MAX_RETRY_DELAY)


T = TypeVar("T")


def is_retryable(error: BaseException) -> bool:
    """Whether waiting and sending the same request again can succeed."""
    if isinstance(error, QuotaExceededError | RequestTooLargeError | StreamInterruptedError):
        return False
    return isinstance(error, RateLimitError | ProviderNotAvailableError)


class _AttemptsRemain(retry_base):
    """Retry only while attempts remain, so no wait is planned (or logged) after the last one."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    @override
    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.attempt_number < self.attempts


class _GiveUpError(Exception):
    """Internal: the server asked for a wait we will not make; carries the original error."""


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    deadline: float,
    provider: str,
    model: str,
    retryable: Callable[[BaseException], bool] = is_retryable,
    wait_hint: Callable[[BaseException], float | None] | None = None,
    max_retry_after: float | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or ``max_retries`` retries are spent.

    ``deadline`` is a ``time.monotonic()`` value: no retry starts a wait that would end after it.
    ``retryable`` decides which errors are worth another attempt; ``wait_hint`` may name the
    wait for an error (e.g. 0 when another key is ready), overriding retry-after and backoff.
    """
    cap = MAX_RETRY_AFTER if max_retry_after is None else max_retry_after

    def wait_for(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hinted = wait_hint(error) if wait_hint is not None and error is not None else None
        server_asked = getattr(error, "retry_after", None)
        if hinted is not None:
            wait = hinted
        elif server_asked is not None and math.isfinite(server_asked) and server_asked >= 0:
            wait = server_asked
        else:
            wait = _backoff(state.attempt_number)
        if wait > cap or time.monotonic() + wait > deadline:
            raise _GiveUpError from error
        _log.info(
            "llm.request.retrying",
            provider=provider,
            model=model,
            attempt=state.attempt_number,
            reason=type(error).__name__,
            status_code=getattr(error, "status_code", None),
            wait_seconds=round(wait, 3),
        )
        return wait

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=wait_for,
        # Checked before the wait is computed, so the last attempt's error is not "retried".
        retry=retry_if_exception(retryable) & _AttemptsRemain(max_retries + 1),
        reraise=True,
    )
    try:
        async for attempt_state in retrying:
            with attempt_state:
                return await attempt()
    except _GiveUpError as give_up:
        original = give_up.__cause__
        if isinstance(original, LLMClientError):
            raise original from original.__cause__
        raise
    raise AssertionError("unreachable: tenacity either returns, reraises or gives up")
