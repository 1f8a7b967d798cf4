import inspect
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import aiecs_llm
from aiecs_llm import errors
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.transport import errors as translation
from aiecs_llm.transport.errors import translate_error

litellm = _litellm.litellm()
REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")


def litellm_exception_classes():
    module = litellm.exceptions
    return sorted(
        (
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__.startswith("litellm")
        ),
        key=lambda klass: klass.__name__,
    )


def response(status, headers=None, body=b"{}"):
    return httpx.Response(status, headers=headers or {}, content=body, request=REQUEST)


def test_litellm_exports_exceptions():
    assert len(litellm_exception_classes()) >= 30


@pytest.mark.parametrize("klass", litellm_exception_classes(), ids=lambda k: k.__name__)
def test_every_litellm_exception_class_is_mapped(klass):
    # Resolved along the class's own MRO, so subclasses LiteLLM adds later inherit a mapping,
    # but every class exported today must reach an entry without falling back to the root.
    mapped = translation._class_table_match(klass)
    assert mapped is not None, f"{klass.__name__} has no entry in translation._BY_LITELLM_CLASS"
    if klass.__name__ not in {"OpenAIError", "MockException"}:
        assert mapped is not errors.LLMClientError


def test_error_tree_shape():
    assert issubclass(aiecs_llm.RequestTimeoutError, aiecs_llm.ProviderNotAvailableError)
    assert issubclass(aiecs_llm.StreamInterruptedError, aiecs_llm.ProviderNotAvailableError)
    assert issubclass(aiecs_llm.QuotaExceededError, aiecs_llm.RateLimitError)
    assert issubclass(aiecs_llm.ContextWindowExceededError, aiecs_llm.InvalidRequestError)
    assert issubclass(aiecs_llm.ContentPolicyError, aiecs_llm.InvalidRequestError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), aiecs_llm.LLMClientError)


def translate(exc):
    return translate_error(exc, provider="openai", model="gpt-4o-mini")


def test_status_beats_litellm_class_403_arriving_as_api_error():
    exc = litellm.APIError(
        status_code=403,
        message="forbidden",
        llm_provider="openai",
        model="gpt-4o-mini",
        request=REQUEST,
    )
    error = translate(exc)
    assert type(error) is aiecs_llm.AuthenticationError
    assert error.status_code == 403


def test_anthropic_529_reported_as_500_is_provider_not_available():
    exc = litellm.InternalServerError(
        message='AnthropicException - {"type":"error","error":{"type":"overloaded_error"}}',
        llm_provider="anthropic",
        model="claude-sonnet-4-5",
    )
    assert type(translate(exc)) is aiecs_llm.ProviderNotAvailableError


def test_more_specific_class_under_the_status_wins():
    exc = litellm.ContextWindowExceededError(
        message="This model's maximum context length is 128000 tokens",
        model="gpt-4o-mini",
        llm_provider="openai",
        response=response(400),
    )
    error = translate(exc)
    assert type(error) is aiecs_llm.ContextWindowExceededError
    assert error.status_code == 400


def test_content_policy():
    exc = litellm.ContentPolicyViolationError(
        message="flagged", model="gpt-4o-mini", llm_provider="openai", response=response(400)
    )
    assert type(translate(exc)) is aiecs_llm.ContentPolicyError


def test_rate_limit_carries_retry_after():
    exc = litellm.RateLimitError(
        message="slow down",
        llm_provider="openai",
        model="gpt-4o-mini",
        response=response(429, {"retry-after": "7"}),
    )
    error = translate(exc)
    assert type(error) is aiecs_llm.RateLimitError
    assert error.retry_after == 7.0
    assert (error.provider, error.model, error.status_code) == ("openai", "gpt-4o-mini", 429)


def test_quota_429_is_not_a_plain_rate_limit():
    exc = litellm.RateLimitError(
        message='{"error": {"code": "insufficient_quota", "message": "You exceeded your current '
        'quota"}}',
        llm_provider="openai",
        model="gpt-4o-mini",
        response=response(429),
    )
    assert type(translate(exc)) is aiecs_llm.QuotaExceededError


def test_request_too_large_429_is_its_own_class():
    exc = litellm.RateLimitError(
        message="Request too large for gpt-4o in organization org-x on tokens per min (TPM): "
        "Limit 30000, Requested 45000.",
        llm_provider="openai",
        model="gpt-4o",
        response=response(429),
    )
    assert type(translate(exc)) is aiecs_llm.RequestTooLargeError


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, aiecs_llm.InvalidRequestError),
        (401, aiecs_llm.AuthenticationError),
        (403, aiecs_llm.AuthenticationError),
        (404, aiecs_llm.ModelNotFoundError),
        (408, aiecs_llm.RequestTimeoutError),
        (422, aiecs_llm.InvalidRequestError),
        (429, aiecs_llm.RateLimitError),
        (500, aiecs_llm.ProviderNotAvailableError),
        (502, aiecs_llm.ProviderNotAvailableError),
        (503, aiecs_llm.ProviderNotAvailableError),
        (529, aiecs_llm.ProviderNotAvailableError),
    ],
)
def test_status_table(status, expected):
    exc = litellm.APIError(
        status_code=status, message="x", llm_provider="openai", model="m", request=REQUEST
    )
    assert type(translate(exc)) is expected


def test_transport_errors_without_status():
    assert type(translate(httpx.ConnectError("refused"))) is aiecs_llm.ProviderNotAvailableError
    assert type(translate(httpx.ReadTimeout("slow"))) is aiecs_llm.RequestTimeoutError
    assert type(translate(TimeoutError())) is aiecs_llm.RequestTimeoutError
    assert type(translate(ConnectionResetError())) is aiecs_llm.ProviderNotAvailableError


def test_translated_errors_pass_through_unchanged():
    original = aiecs_llm.RateLimitError("x")
    assert translate(original) is original


def test_keys_are_redacted_from_messages():
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
    exc = litellm.AuthenticationError(
        message=f"Incorrect API key provided: {key}. And partially: {key[3:20]}",
        llm_provider="openai",
        model="gpt-4o-mini",
    )
    error = translate_error(exc, provider="openai", model="gpt-4o-mini", secrets=[key])
    for text in (str(error), repr(error), error.message):
        assert key not in text
        assert key[3:20] not in text


def test_cause_is_kept_when_raised_from():
    exc = litellm.NotFoundError(message="no such model", llm_provider="openai", model="x")
    with pytest.raises(aiecs_llm.ModelNotFoundError) as caught:
        try:
            raise exc
        except Exception as original:
            raise translate(original) from original
    assert caught.value.__cause__ is exc


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": "0"}, 0.0),
        # Unreadable, not "no wait": the caller's own backoff applies (issue 15: "-1" gave four
        # requests in 0.05 s, "nan" reached asyncio.sleep(nan) and hung).
        ({"retry-after": "-3"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after-ms": "-250", "retry-after": "nan"}, None),
        ({"retry-after-ms": "NaN", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        (
            {
                "retry-after": format_datetime(
                    datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=30), usegmt=True
                )
            },
            30.0,
        ),
        (
            {
                "retry-after": format_datetime(
                    datetime.fromtimestamp(NOW, UTC) - timedelta(seconds=30), usegmt=True
                )
            },
            0.0,
        ),
        ({"retry-after": "Fri, 99 Foo 2023 16:26:57 GMT"}, None),
        ({"retry-after": "later"}, None),
    ],
)
def test_retry_after_parsing(headers, expected):
    assert translation.retry_after_seconds(headers, now=NOW) == expected


def test_gemini_retry_info_in_the_body_is_the_retry_after():
    body = (
        '{"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED",'
        ' "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}'
    )
    exc = litellm.RateLimitError(
        message=f"litellm.RateLimitError: geminiException - {body}",
        llm_provider="gemini",
        model="gemini-2.5-flash",
        response=response(429),
    )
    error = translate_error(exc, provider="google", model="gemini-2.5-flash")
    assert type(error) is aiecs_llm.RateLimitError
    assert error.retry_after == 12.0
    assert error.code == "RESOURCE_EXHAUSTED"
    assert error.message == "Resource exhausted."


def test_provider_message_and_code_are_extracted():
    exc = litellm.InternalServerError(
        message='AnthropicException - {"type":"error","error":{"type":"overloaded_error",'
        '"message":"Overloaded"}}',
        llm_provider="anthropic",
        model="claude-sonnet-4-5",
    )
    error = translate(exc)
    assert (error.message, error.code) == ("Overloaded", "overloaded_error")
