"""A call on its way down the pipeline: what the caller asked for (``CallRequest``), validated
once, and one attempt of it on one route (``PreparedCall``), ready for a transport.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiecs_llm.config.settings import TokenPrice
from aiecs_llm.errors import InvalidResponseError, LLMClientError
from aiecs_llm.transport.errors import translate_error
from aiecs_llm.types import LLMMessage, LLMResponse


@dataclass(slots=True)
class CallStats:
    """What happened on the way, for the call's record."""

    attempts: int = 0
    """Requests sent, over all models tried (attempts refused locally, by the circuit breaker,
    a rate limit or the deadline, are not)."""


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What the caller asked for, validated once, whichever model ends up answering."""

    primary_model: str
    """The LiteLLM model string asked for (or defaulted to)."""
    messages: tuple[LLMMessage, ...]
    temperature: float | None
    max_tokens: int | None
    extra: Mapping[str, Any]
    """Further LiteLLM parameters, sent unchanged."""
    timeout: float
    max_retries: int
    stream: bool
    hedge: bool
    """Send a second request to the next route if the first is slow."""
    prompt_tokens: int
    """A rough count (four characters a token), for rate limits and context-window choice."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Caller tags (service, task id, user) for budgets, the ledger and reports."""
    stats: CallStats = field(default_factory=CallStats)
    cache_mode: Literal["auto", "force", "bypass"] = "auto"
    """The response cache's policy for this call."""
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` by which the call, retries and fallbacks included, is over."""
        return self.started + self.timeout


@dataclass(slots=True)
class PreparedCall:
    """One attempt's request on one route: what goes to LiteLLM and what accounting needs."""

    request: CallRequest
    params: dict[str, Any] = field(repr=False)
    """What goes to ``litellm.acompletion``, the key included."""
    model: str
    provider: str
    litellm_provider: str
    secrets: tuple[str, ...] = field(repr=False)
    http_client: Any
    overrides: Mapping[str, TokenPrice]
    usage_expected: bool
    """The provider always reports usage (for a stream, at its end, since we ask for it)."""
    reservation: Any = None
    """The rate-limit reservation this call holds, settled to the real token count."""

    @property
    def started(self) -> float:
        """When the whole call (not this attempt) started."""
        return self.request.started

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` by which the call, retries included, must be over."""
        return self.request.deadline

    @property
    def token_estimate(self) -> int:
        """Prompt estimate plus the output limit: what the rate limiter reserves."""
        return self.request.prompt_tokens + int(self.params.get("max_tokens") or 0)

    def fail(self, exc: BaseException) -> LLMClientError:
        """``exc`` translated into our error tree, keys redacted, for ``raise ... from exc``."""
        return translate_error(exc, provider=self.provider, model=self.model, secrets=self.secrets)

    def invalid(self, message: str) -> InvalidResponseError:
        """The error for an answer that arrived but cannot be used."""
        return InvalidResponseError(message, provider=self.provider, model=self.model)

    @contextmanager
    def reading_answer(self) -> Iterator[None]:
        """Reading what LiteLLM made of the answer: a value of a type nobody expected fails as
        ``InvalidResponseError`` (with the original on ``__cause__``), not as a bare exception.
        """
        try:
            yield
        except LLMClientError:
            raise
        except Exception as exc:  # the boundary for everything built from the answer
            raise self.invalid(f"the provider's answer could not be read: {exc}") from exc

    def settle(self, response: LLMResponse) -> None:
        """Correct the rate-limit reservation to the tokens really used."""
        if self.reservation is not None and response.tokens_used is not None:
            self.reservation.settle(response.tokens_used)
