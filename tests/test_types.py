import pytest
from pydantic import ValidationError

from aiecs_llm import LLMMessage, LLMResponse


@pytest.mark.parametrize("role", ["system", "user", "assistant"])
def test_message_accepts_the_three_roles(role):
    message = LLMMessage(role, "hello")
    assert (message.role, message.content) == (role, "hello")


def test_message_keyword_construction():
    assert LLMMessage(role="user", content="hi") == LLMMessage("user", "hi")


@pytest.mark.parametrize(
    ("role", "content", "field"),
    [
        ("bot", "hi", "role"),
        ("tool", "hi", "role"),
        ("", "hi", "role"),
        ("user", "", "content"),
        ("user", "   \n\t", "content"),
        ("user", "bad \udcff surrogate", "content"),
    ],
)
def test_invalid_message_is_a_value_error_naming_the_field(role, content, field):
    with pytest.raises(ValueError, match=field) as caught:
        LLMMessage(role, content)
    assert isinstance(caught.value, ValidationError)


def test_message_is_immutable():
    message = LLMMessage("user", "hi")
    with pytest.raises(ValidationError):
        message.content = "changed"  # type: ignore[misc]


def test_response_fills_total_from_the_two_counts():
    response = LLMResponse(
        content="x", provider="openai", model="m", prompt_tokens=8, completion_tokens=9
    )
    assert response.tokens_used == 17


def test_response_keeps_a_reported_total():
    response = LLMResponse(
        content="x",
        provider="openai",
        model="m",
        prompt_tokens=8,
        completion_tokens=9,
        tokens_used=20,
    )
    assert response.tokens_used == 20


def test_response_total_stays_unknown_without_both_counts():
    assert LLMResponse(content="x", provider="p", model="m", prompt_tokens=3).tokens_used is None


@pytest.mark.parametrize("raw", [b"Hello", bytearray(b"Hello"), memoryview(b"Hello")])
def test_bytes_content_is_refused_not_decoded(raw):
    # Issue 15: b"Hello" used to be decoded silently into "Hello".
    with pytest.raises(ValueError, match="not bytes"):
        LLMMessage("user", raw)
