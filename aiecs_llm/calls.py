"""A request on its way through LiteLLM, what it reads from its client as it goes, and reading
LiteLLM's answers (whole responses and stream chunks) into ``LLMResponse``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aiecs_llm import pricing
from aiecs_llm.errors import InvalidResponseError, LLMClientError, translate_error
from aiecs_llm.settings import TokenPrice
from aiecs_llm.types import LLMMessage, LLMResponse

if TYPE_CHECKING:
    from aiecs_llm.accounting import Accounting
    from aiecs_llm.cache import ResponseCache
    from aiecs_llm.settings import LLMSettings


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


class CallOwner(Protocol):
    """The client attributes a call reads as it runs (not once when the client is made), so a
    change to one of them applies from the next call on.
    """

    settings: LLMSettings
    accounting: Accounting
    cache: ResponseCache | None
    log_content: bool


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


def to_response(raw: Any, call: PreparedCall, fallback_from: str | None = None) -> LLMResponse:
    """Read a LiteLLM ``ModelResponse`` into an ``LLMResponse``."""
    choices = getattr(raw, "choices", None)
    if not choices:
        raise call.invalid("the provider's answer has no choices")
    usage = getattr(raw, "usage", None)
    # LiteLLM fills in zeros when the provider's body had no usage; no real prompt is 0 tokens.
    if call.usage_expected and not getattr(usage, "prompt_tokens", None):
        raise call.invalid("the provider's answer has no usage report")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise call.invalid(f"the provider's answer has a {type(content).__name__} as its text")
    with call.reading_answer():
        return build_response(
            call,
            content=content or "",
            model=_text(getattr(raw, "model", None)),
            usage=usage,
            finish_reason=getattr(choices[0], "finish_reason", None),
            fallback_from=fallback_from,
            litellm_cost=_litellm_cost(raw),
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _litellm_cost(raw: Any) -> float | None:
    hidden = getattr(raw, "hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


class StreamReading:
    """Collects what a LiteLLM stream says besides the text: model, usage, finish reason."""

    def __init__(self, call: PreparedCall, raw: Any = None) -> None:
        self.call = call
        self.raw = raw
        """The stream being read: LiteLLM's, for where its usage report came from."""
        self.parts: list[str] = []
        self.model: str | None = None
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.first_chunk_at: float | None = None

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self.parts)

    def add(self, chunk: Any) -> str:
        """Take in one LiteLLM chunk; return its text ("" for a chunk with none)."""
        # LiteLLM rewrites chunk.model to the requested name; the provider's own (often dated)
        # name survives in the hidden params.
        hidden = getattr(chunk, "hidden_params", None)
        served = hidden.get("provider_response_model") if isinstance(hidden, dict) else None
        self.model = _text(served) or self.model or _text(getattr(chunk, "model", None))
        self.usage = getattr(chunk, "usage", None) or self.usage
        choices = getattr(chunk, "choices", None) or ()
        if not choices:
            return ""
        self.finish_reason = getattr(choices[0], "finish_reason", None) or self.finish_reason
        text = getattr(getattr(choices[0], "delta", None), "content", None) or ""
        if not isinstance(text, str):
            raise self.call.invalid(f"a streamed chunk has a {type(text).__name__} as its text")
        if text:
            if self.first_chunk_at is None:
                self.first_chunk_at = time.monotonic()
            self.parts.append(text)
        return text

    def finish(self, fallback_from: str | None = None) -> LLMResponse:
        """The response once the stream has ended; an error if it ended unfinished."""
        if self.finish_reason is None:
            raise InvalidResponseError(
                "the stream ended before the provider said it finished",
                provider=self.call.provider,
                model=self.call.model,
            )
        if self.usage is not None and not _provider_reported_usage(self.raw):
            self.usage = None  # LiteLLM's own count: not the provider's figures
        if self.usage is None and self.call.usage_expected:
            # These providers always end a healthy stream with a usage report (we ask for it);
            # LiteLLM papers over some broken streams with a made-up "stop", so its absence is
            # the reliable sign that the end of the stream was lost.
            raise InvalidResponseError(
                "the stream ended without the provider's final usage report; it was cut short",
                provider=self.call.provider,
                model=self.call.model,
            )
        first = self.first_chunk_at
        with self.call.reading_answer():
            return build_response(
                self.call,
                content=self.text,
                model=self.model,
                usage=self.usage,
                finish_reason=self.finish_reason,
                time_to_first_chunk=None if first is None else first - self.call.started,
                fallback_from=fallback_from,
            )


# Far beyond any model's context window: a larger count is garbage (and one above 2**63 could
# not even be stored in the ledger).
_MAX_TOKENS = 10**9


def _count(call: PreparedCall, holder: Any, name: str) -> int | None:
    value: object = getattr(holder, name, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TOKENS:
        raise call.invalid(f"the provider's usage report has {name}={value!r}")
    return value


def _provider_reported_usage(raw: Any) -> bool:
    # LiteLLM takes the usage off the provider's chunks and sends one total at the end, which it
    # counts itself when the provider sent none. The chunks it kept tell which it was.
    kept = getattr(raw, "chunks", None)
    if not isinstance(kept, list):
        return True  # not a LiteLLM stream: any usage in it is the provider's
    return any(getattr(chunk, "usage", None) is not None for chunk in kept)


def build_response(
    call: PreparedCall,
    *,
    content: str,
    model: str | None,
    usage: Any,
    finish_reason: str | None,
    time_to_first_chunk: float | None = None,
    fallback_from: str | None = None,
    litellm_cost: float | None = None,
) -> LLMResponse:
    """Assemble the ``LLMResponse``: usage from the provider's counts, cost from its prices.

    ``litellm_cost`` is the figure LiteLLM already computed for a whole response; it is used as
    is (same table, same rules) unless the configuration overrides the model's price.
    """
    answered_by = model or call.model
    cost = None
    overridden = pricing.override_for(call.overrides, answered_by, call.model, call.params["model"])
    if litellm_cost is not None and overridden is None:
        cost = litellm_cost
    elif usage is not None:
        cost = pricing.usage_cost(
            usage=usage,
            models=[answered_by, call.model],
            provider=call.litellm_provider,
            overrides=call.overrides,
        )
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return LLMResponse(
        content=content,
        provider=call.provider,
        model=answered_by,
        requested_model=call.params["model"],
        tokens_used=_count(call, usage, "total_tokens"),
        prompt_tokens=_count(call, usage, "prompt_tokens"),
        completion_tokens=_count(call, usage, "completion_tokens"),
        cached_tokens=_count(call, prompt_details, "cached_tokens"),
        reasoning_tokens=_count(call, completion_details, "reasoning_tokens"),
        cost_estimate=cost,
        response_time=time.monotonic() - call.started,
        time_to_first_chunk=time_to_first_chunk,
        finish_reason=finish_reason,
        fallback_from=fallback_from,
    )
