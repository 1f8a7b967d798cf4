"""Reading what a transport brought back (LiteLLM's ``ModelResponse`` or its stream chunks)
into an ``LLMResponse``: text, the provider's usage figures, cost, finish reason.

Both transports hand over the same LiteLLM objects, so one reader serves every path.
"""

from __future__ import annotations

import time
from typing import Any

from aiecs_llm.accounting import pricing
from aiecs_llm.errors import InvalidResponseError
from aiecs_llm.transport.call import PreparedCall
from aiecs_llm.types import LLMResponse


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
    # LiteLLM's own figure, unless the model that answered is missing from its map (it then
    # prices the call at 0.0): the requested model's price is used instead.
    if (
        litellm_cost is not None
        and overridden is None
        and pricing.is_priced(answered_by, call.litellm_provider)
    ):
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
