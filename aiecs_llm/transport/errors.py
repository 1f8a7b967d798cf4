"""Translating failures into the error tree: once, for whichever transport the call went by.

An answer that arrived but could not be read is recognised first (a parsing failure in the
exception chain, or LiteLLM's words for one), since LiteLLM reports it as a 500 or a 422 of its
own. Otherwise classification is by HTTP status first and LiteLLM exception class second,
because the status is what the provider actually returned while LiteLLM's class is its own
guess, and LiteLLM maps some statuses wrongly (a 403 on the OpenAI path arrives as
``litellm.APIError``; Anthropic's 529 arrives as a 500 ``InternalServerError``). The class is
used when it is *more specific* than the status (``ContextWindowExceededError`` below 400) or
when there is no status at all.
"""

from __future__ import annotations

import ast
import contextlib
import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiecs_llm.config.secrets import redact
from aiecs_llm.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    InvalidRequestError,
    InvalidResponseError,
    LLMClientError,
    ModelNotFoundError,
    ProviderNotAvailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    RequestTooLargeError,
)

_BY_STATUS: dict[int, type[LLMClientError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: QuotaExceededError,
    403: AuthenticationError,
    404: ModelNotFoundError,
    408: RequestTimeoutError,
    413: ContextWindowExceededError,
    422: InvalidRequestError,
    429: RateLimitError,
}

# LiteLLM class name -> our class. Names rather than classes so that this module does not import
# LiteLLM; the most specific entry along the exception's MRO wins. A test checks that every
# exception class LiteLLM exports resolves to an entry here.
_BY_LITELLM_CLASS: dict[str, type[LLMClientError]] = {
    "APIConnectionError": ProviderNotAvailableError,
    "APIError": ProviderNotAvailableError,
    "APIResponseValidationError": InvalidResponseError,
    "AuthenticationError": AuthenticationError,
    "BadGatewayError": ProviderNotAvailableError,
    "BadRequestError": InvalidRequestError,
    "BlockedPiiEntityError": ContentPolicyError,
    "BudgetExceededError": BudgetExceededError,
    "ContentPolicyViolationError": ContentPolicyError,
    "ContextWindowExceededError": ContextWindowExceededError,
    "GuardrailRaisedException": ContentPolicyError,
    "InternalServerError": ProviderNotAvailableError,
    "JSONSchemaValidationError": InvalidResponseError,
    "LiteLLMUnknownProvider": ModelNotFoundError,
    "MidStreamFallbackError": ProviderNotAvailableError,
    "MockException": LLMClientError,
    "ModelNotMappedError": ModelNotFoundError,
    "ModifyResponseException": InvalidResponseError,
    "NotFoundError": ModelNotFoundError,
    "OpenAIError": LLMClientError,
    "PaymentRequiredError": QuotaExceededError,
    "PermissionDeniedError": AuthenticationError,
    "RateLimitError": RateLimitError,
    "RejectedRequestError": ContentPolicyError,
    "SensitiveDataRouteException": ContentPolicyError,
    "ServiceUnavailableError": ProviderNotAvailableError,
    "Timeout": RequestTimeoutError,
    "UnprocessableEntityError": InvalidRequestError,
    # Transport and parsing failures that can escape LiteLLM unwrapped.
    "TimeoutError": RequestTimeoutError,
    "TimeoutException": RequestTimeoutError,
    "ServerTimeoutError": RequestTimeoutError,
    "ConnectionError": ProviderNotAvailableError,
    "TransportError": ProviderNotAvailableError,
    "ClientError": ProviderNotAvailableError,
    "JSONDecodeError": InvalidResponseError,
}

# vcrpy's words for a request that no recording matches (LiteLLM keeps only the text).
_CASSETTE_MISS = "Can't play back this request"
_BYTES_REPR = re.compile(r"""b(['"])\{.*\1""", re.DOTALL)
# Providers say "quota" in a 429 when waiting will not help; retrying those only burns time.
_QUOTA_MARKERS = ("insufficient_quota", "exceeded your current quota", "billing")
# OpenAI: "Request too large for gpt-4o ... on tokens per min (TPM): Limit 30000, Requested
# 45000"; Anthropic: "... would exceed your rate limit ... input tokens per minute" is retried.
_TOO_LARGE_MARKERS = ("request too large",)
# Anthropic reports its 529 "overloaded" as a 500 through LiteLLM.
_OVERLOADED_MARKERS = ("overloaded_error", "overloaded")


def translate_error(
    exc: BaseException,
    *,
    provider: str | None,
    model: str | None,
    secrets: Iterable[str] = (),
) -> LLMClientError:
    """Turn any exception raised while talking to a provider into the matching LLMClientError.

    The caller raises the result ``from exc``. Already-translated errors pass through.
    ``exc`` and what it chains lose their tracebacks: the frames of LiteLLM, the OpenAI SDK and
    httpx hold the key in their locals, and an application that logs the error with its
    traceback (rich, structlog's ``dict_tracebacks``) would print them. Their types and
    messages stay.
    """
    if isinstance(exc, LLMClientError):
        return exc
    for link in _chain_of(exc):
        if not isinstance(link, LLMClientError):
            link.__traceback__ = None
    wrapped = getattr(exc, "original_exception", None)
    if type(exc).__name__ == "MidStreamFallbackError" and isinstance(wrapped, BaseException):
        # LiteLLM wraps whatever broke a stream, even a 429 before the first chunk; the stream
        # reader decides whether it was mid-stream, so classify the original failure.
        return translate_error(wrapped, provider=provider, model=model, secrets=secrets)
    raw_message = redact(_message_of(exc), secrets)
    if _CASSETTE_MISS in raw_message:
        # aiecs_llm.testing replays recordings; a request that is not recorded is a test-setup
        # mistake, not an outage, so it must not be retried or reported as a 500.
        return ConfigurationError(raw_message, provider=provider, model=model)
    chain = _chain_of(exc)
    if _unparseable(chain, raw_message):
        # LiteLLM reports an answer it could not read as a 500 or a 422 of its own making; the
        # provider did answer, so it is neither an outage to retry nor the caller's mistake.
        # The message is LiteLLM's first line: the rest is its Python traceback.
        return InvalidResponseError(
            f"the provider's answer could not be read: {raw_message.splitlines()[0]}",
            provider=provider or getattr(exc, "llm_provider", None) or None,
            model=model or getattr(exc, "model", None) or None,
        )
    body = next((b for b in (getattr(e, "body", None) for e in chain) if isinstance(b, dict)), None)
    said = _provider_error(raw_message, body)
    lost = _connection_failure(chain)
    if lost is not None:
        # No answer came: the socket's own words, which every HTTP stack under LiteLLM (the
        # openai SDK, LiteLLM's handler, the fast transport) chains, where each wraps them in
        # words of its own ("Connection error.").
        said = _ProviderSaid(message=f"the connection failed: {redact(str(lost), secrets)}")
    code = said.code or _first_text(
        *(getattr(e, name, None) for e in chain for name in _CODE_ATTRS)
    )
    status = _status_of(exc, said.status)
    error_class = _classify(exc, status, f"{code or ''} {raw_message}")
    context: dict[str, Any] = {
        "provider": provider or getattr(exc, "llm_provider", None) or None,
        "model": model or getattr(exc, "model", None) or None,
        "status_code": status,
        "retry_after": _first_known(retry_after_seconds(_headers_of(exc)), said.retry_delay),
        "code": code,
    }
    return error_class(said.message or raw_message, **context)


# What reading a malformed body raises (pydantic's ValidationError counts by name: this module
# does not import pydantic's internals for it).
_PARSE_FAILURES = (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError, LookupError)
_PARSE_FAILURE_NAMES = frozenset({"ValidationError"})
# Failures of the transport or a real HTTP error status: what broke was not the answer's body.
_TRANSPORT_NAMES = frozenset({"TransportError", "ClientError", "HTTPStatusError", "APIStatusError"})
# LiteLLM's words when it could not read a 200 answer (its exception then says 500 or 422).
_UNREADABLE_MARKERS = (
    "Unable to get json response",
    "Error converting to valid response block",
    "Empty or invalid response from LLM endpoint",
)


def _unparseable(chain: list[BaseException], message: str) -> bool:
    """Whether the provider's answer arrived but could not be read."""
    # LiteLLM's own classes are left out: they subclass openai's status errors whatever the
    # status really was.
    foreign = [error for error in chain if not type(error).__module__.startswith("litellm")]
    names = {klass.__name__ for error in foreign for klass in type(error).__mro__}
    if names & _TRANSPORT_NAMES or any(isinstance(e, OSError | TimeoutError) for e in chain):
        return False
    if any(marker in message for marker in _UNREADABLE_MARKERS):
        return True
    return any(isinstance(e, _PARSE_FAILURES) for e in chain) or bool(names & _PARSE_FAILURE_NAMES)


def _connection_failure(chain: list[BaseException]) -> OSError | None:
    """The socket error at the root of ``chain`` (refused, reset, TLS), when that is what
    failed; None for a timeout or anything else.
    """
    root = chain[-1]
    if isinstance(root, OSError) and not isinstance(root, TimeoutError) and str(root):
        return root
    return None


def _classify(exc: BaseException, status: int | None, message: str) -> type[LLMClientError]:
    by_class = _class_table_match(type(exc))
    by_status = _BY_STATUS.get(status) if status is not None else None
    if by_status is None and status is not None and status >= 500:
        by_status = ProviderNotAvailableError
    if by_status is None:
        chosen = by_class or LLMClientError
    elif by_class is not None and issubclass(by_class, by_status):
        chosen = by_class
    # Gemini rejects a bad key with 400 INVALID_ARGUMENT; LiteLLM recognises it as auth.
    elif by_class is AuthenticationError and status == 400:
        chosen = AuthenticationError
    else:
        chosen = by_status
    lowered = message.lower()
    if chosen is RateLimitError and any(marker in lowered for marker in _QUOTA_MARKERS):
        return QuotaExceededError
    if chosen is RateLimitError and any(marker in lowered for marker in _TOO_LARGE_MARKERS):
        return RequestTooLargeError
    if chosen is LLMClientError and any(marker in lowered for marker in _OVERLOADED_MARKERS):
        return ProviderNotAvailableError
    return chosen


def _class_table_match(exc_type: type[BaseException]) -> type[LLMClientError] | None:
    for klass in exc_type.__mro__:
        mapped = _BY_LITELLM_CLASS.get(klass.__name__)
        if mapped is not None:
            return mapped
    return None


def _status_of(exc: BaseException, body_status: int | None) -> int | None:
    # LiteLLM folds some statuses into its own (Anthropic's 529 and Gemini's 503 become 500).
    # What the provider said survives in provider_status_code, or in Gemini's body.
    candidates = (
        getattr(exc, "provider_status_code", None),
        body_status,
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    )
    return next((code for code in candidates if isinstance(code, int) and 100 <= code < 600), None)


# LiteLLM prefixes messages with its class names ("litellm.RateLimitError: RateLimitError:
# OpenAIException - ..."); the class is already ours, so only the provider's words are kept.
_LITELLM_PREFIX = re.compile(r"^(?:\s*(?:litellm\.)?\w+(?:Error|Exception)\s*(?::|-)\s*)+")


def _message_of(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) and message else str(exc)
    return _LITELLM_PREFIX.sub("", text).strip() or type(exc).__name__


@dataclass(frozen=True, slots=True)
class _ProviderSaid:
    message: str | None = None
    code: str | None = None
    status: int | None = None
    retry_delay: float | None = None


def _provider_error(text: str, body: object = None) -> _ProviderSaid:
    """What a provider's JSON error body quoted in ``text`` says.

    OpenAI sends ``{"error": {"message", "type", "code"}}``, Anthropic
    ``{"type": "error", "error": {"type", "message"}}``, Gemini
    ``{"error": {"code": 429, "message", "status", "details": [RetryInfo]}}``. On the OpenAI
    path LiteLLM keeps the parsed ``error`` object as the exception's ``body`` instead.
    """
    if not isinstance(body, dict):
        body = _json_object_in(text)
    error = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return _ProviderSaid()
    message = error.get("message")
    numeric = error.get("code")
    return _ProviderSaid(
        message=message if isinstance(message, str) and message else None,
        code=next(
            (
                value
                for value in (error.get("code"), error.get("status"), error.get("type"))
                if isinstance(value, str) and value
            ),
            None,
        ),
        # Only Gemini puts the HTTP status in the body.
        status=numeric if isinstance(numeric, int) and not isinstance(numeric, bool) else None,
        retry_delay=_retry_info_delay(error.get("details")),
    )


def _json_object_in(text: str) -> object:
    # On some stream paths LiteLLM quotes the body as a bytes repr: b'{\n  "error": ...}'.
    if (quoted := _BYTES_REPR.search(text)) is not None:
        with contextlib.suppress(ValueError, SyntaxError, UnicodeDecodeError):
            text = ast.literal_eval(quoted.group(0)).decode("utf-8", "replace")
    start = text.find("{")
    if start < 0:
        return None
    try:
        # LiteLLM may append words of its own after the body (". Handle with `litellm...`").
        found, _end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None
    return found


def _retry_info_delay(details: object) -> float | None:
    # Gemini says how long to wait in the body, not in a header: RetryInfo.retryDelay "7s".
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("rpc.RetryInfo"):
            return _seconds(str(detail.get("retryDelay", "")).removesuffix("s"))
    return None


# On the OpenAI path the provider's code travels on the chained openai.APIStatusError, not in
# LiteLLM's message.
_CODE_ATTRS = ("code", "type")


def _chain_of(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _first_text(*values: object) -> str | None:
    return next((value for value in values if isinstance(value, str) and value), None)


def _first_known(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _headers_of(exc: BaseException) -> Mapping[str, str]:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    if not isinstance(headers, Mapping):
        try:
            headers = dict(headers) if headers is not None else {}
        except (TypeError, ValueError):
            headers = {}
    return {str(key).lower(): str(value) for key, value in headers.items()}


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Read how long the server asked us to wait: ``retry-after-ms``, then ``retry-after``
    (seconds or an HTTP date). Returns None when absent or unreadable, so the caller falls back
    to its own backoff: a negative, infinite or NaN number is unreadable, not "no wait".
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None and (milliseconds := _seconds(raw_ms)) is not None:
        return milliseconds / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    if (seconds := _seconds(raw)) is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)  # a date already past: wait no longer


def _seconds(raw: str) -> float | None:
    """A non-negative, finite number of seconds, or None."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
