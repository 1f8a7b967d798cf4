"""The values that cross the public API: messages in, responses out."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant"]


class LLMMessage(BaseModel):
    """One turn of a conversation.

    Invalid input raises ``ValueError`` (pydantic's ``ValidationError`` is one) naming the field:
    ``role`` must be ``system``, ``user`` or ``assistant``; ``content`` must not be blank.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str

    def __init__(self, role: Role, content: str) -> None:
        # Positional construction, as in the spec: LLMMessage("user", "Hi").
        super().__init__(role=role, content=content)

    @field_validator("content", mode="before")
    @classmethod
    def _content_is_text(cls, content: object) -> object:
        # pydantic would decode bytes silently, guessing an encoding the caller never chose.
        if isinstance(content, bytes | bytearray | memoryview):
            # ValueError, not TypeError: pydantic turns only that into a ValidationError.
            raise ValueError(  # noqa: TRY004
                "message content must be text (str), not bytes: decode it first"
            )
        return content

    @field_validator("content")
    @classmethod
    def _content_not_blank(cls, content: str) -> str:
        if not content.strip():
            raise ValueError("message content cannot be empty")
        try:
            content.encode("utf-8")
        except UnicodeEncodeError as exc:
            # Lone surrogates (e.g. from bytes decoded with surrogateescape) cannot be sent as JSON.
            raise ValueError(f"message content is not valid UTF-8 text: {exc.reason}") from None
        return content


class LLMResponse(BaseModel):
    """The answer to one request, with what it cost.

    Token counts are the provider's own figures, never estimates. ``tokens_used`` is filled from
    the two counts when the provider did not send a total.
    """

    model_config = ConfigDict(frozen=True)

    content: str
    """The assistant's text."""
    provider: str
    """The provider that answered, e.g. ``openai``."""
    model: str
    """The model that answered, as the provider named it (often a dated version)."""
    tokens_used: int | None = None
    """Prompt plus completion tokens."""
    prompt_tokens: int | None = None
    """Input tokens, including any read from the provider's prompt cache."""
    completion_tokens: int | None = None
    """Output tokens, including reasoning tokens the model generated but did not show."""
    cost_estimate: float | None = None
    """USD, from LiteLLM's price table or the configured per-1K override; None when unknown."""
    response_time: float | None = None
    """Seconds from sending the request to the last byte of the answer."""
    time_to_first_chunk: float | None = None
    """Seconds until the first streamed text arrived; None for a call that was not streamed."""
    finish_reason: str | None = None
    """Why generation stopped, normalised by LiteLLM (``stop``, ``length``, ...)."""
    cached_tokens: int | None = None
    """Prompt tokens served from the provider's prompt cache (included in ``prompt_tokens``)."""
    reasoning_tokens: int | None = None
    """Hidden reasoning tokens (included in ``completion_tokens``)."""
    requested_model: str | None = Field(default=None, repr=False)
    """The model string sent to LiteLLM for the route that answered."""
    fallback_from: str | None = None
    """The model first asked for, when a fallback model answered instead."""
    cached: bool = False
    """Served from the response cache: nothing was sent and ``cost_estimate`` is 0."""
    original_cost: float | None = None
    """For a cached answer, what the call that produced it cost."""

    @property
    def fallback_used(self) -> bool:
        """Whether a model other than the one asked for answered."""
        return self.fallback_from is not None

    @model_validator(mode="after")
    def _fill_total(self) -> LLMResponse:
        if (
            self.tokens_used is None
            and self.prompt_tokens is not None
            and self.completion_tokens is not None
        ):
            object.__setattr__(self, "tokens_used", self.prompt_tokens + self.completion_tokens)
        return self
