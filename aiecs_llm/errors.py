"""The exceptions raised by aiecs_llm: one tree, rooted at ``LLMClientError``.

The tree::

    LLMClientError                      root: catch this to catch everything
    ├── ConfigurationError              a caller mistake: missing key, bad config file or parameter
    ├── BudgetExceededError             a spending limit would be crossed; nothing was sent
    ├── ProviderNotAvailableError       5xx, 529 overloaded, connection failures (retried)
    │   ├── RequestTimeoutError         no answer within the timeout (retried)
    │   ├── CircuitOpenError            the route failed repeatedly and is resting; nothing sent
    │   └── StreamInterruptedError      a stream broke after it started; has .partial_text
    ├── RateLimitError                  429; .retry_after: seconds the provider asked (retried)
    │   ├── QuotaExceededError          the account's quota or credit is spent (not retried)
    │   └── RequestTooLargeError        this one request exceeds a per-minute limit (not retried)
    ├── AuthenticationError             401 / 403 / a key the provider rejects
    ├── ModelNotFoundError              404 / a model string no provider knows
    ├── InvalidRequestError             400 / 422: the provider refused this request
    │   ├── ContextWindowExceededError  the prompt is longer than the model's context window
    │   └── ContentPolicyError          refused by the provider's content filter
    └── InvalidResponseError            the provider answered something that cannot be parsed

Every error carries ``provider``, ``model``, ``status_code``, ``retry_after`` and ``code`` (the
provider's own error code, e.g. ``insufficient_quota``, ``overloaded_error``,
``RESOURCE_EXHAUSTED``), keeps the original exception as ``__cause__``, and never contains an
API key. Its message is the provider's own message when the provider sent one.

Translation from LiteLLM's and the transports' failures lives in ``aiecs_llm.transport.errors``.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import override

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigurationError",
    "ContentPolicyError",
    "ContextWindowExceededError",
    "InvalidRequestError",
    "InvalidResponseError",
    "LLMClientError",
    "ModelNotFoundError",
    "ProviderNotAvailableError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "StreamInterruptedError",
]


class LLMClientError(Exception):
    """Root of every error raised by aiecs_llm."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.retry_after = retry_after
        self.code = code

    @override
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status_code={self.status_code!r})"
        )


class ConfigurationError(LLMClientError):
    """A caller mistake: a missing key, an invalid config file or parameter."""


class BudgetExceededError(LLMClientError):
    """The request would cross a spending limit, so it was not sent."""


class ProviderNotAvailableError(LLMClientError):
    """The provider could not serve the request: 5xx, 529 overloaded, connection failure."""


class RequestTimeoutError(ProviderNotAvailableError):
    """The provider did not answer within the timeout."""


class CircuitOpenError(ProviderNotAvailableError):
    """The route failed repeatedly and rests for a cool-down; nothing was sent.

    Not retried on the same route: the call moves on to its next fallback model, if any.
    """


class StreamInterruptedError(ProviderNotAvailableError):
    """A stream broke after it had started; ``partial_text`` holds what was already yielded."""

    def __init__(self, message: str, *, partial_text: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.partial_text = partial_text


class RateLimitError(LLMClientError):
    """429: too many requests or tokens; ``retry_after`` is the wait the provider asked for."""


class QuotaExceededError(RateLimitError):
    """The account's quota or credit is exhausted; waiting will not help."""


class RequestTooLargeError(RateLimitError):
    """429 because this single request is larger than the per-minute token limit: it can never
    pass as it is, so waiting will not help (a model with a higher limit might).
    """


class AuthenticationError(LLMClientError):
    """401 / 403: the key is missing, wrong, revoked or lacks permission."""


class ModelNotFoundError(LLMClientError):
    """404, or a model string that no provider knows."""


class InvalidRequestError(LLMClientError):
    """400 / 422: the provider refused the request as malformed or unsupported."""


class ContextWindowExceededError(InvalidRequestError):
    """The conversation is longer than the model's context window."""


class ContentPolicyError(InvalidRequestError):
    """The provider's content filter refused the request or the answer."""


class InvalidResponseError(LLMClientError):
    """The provider answered, but not in a form that can be understood."""
