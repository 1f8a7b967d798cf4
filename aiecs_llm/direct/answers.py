"""What the direct transport returns: the few attributes of LiteLLM's ``ModelResponse`` and
stream chunks that ``aiecs_llm.client.request`` reads, as plain slotted objects.

LiteLLM builds a pydantic ``ModelResponse`` per answer and a ``ModelResponseStream`` per chunk
(and rebuilds the whole response at the end of a stream); these cost a few microseconds each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Text:
    """A message (whole answer) or delta (stream chunk)."""

    content: str | None


@dataclass(slots=True)
class Choice:
    """The first choice of an answer or chunk."""

    text: Text
    finish_reason: str | None

    @property
    def message(self) -> Text:
        """The answer's message (whole answers)."""
        return self.text

    @property
    def delta(self) -> Text:
        """The chunk's new text (streams)."""
        return self.text


@dataclass(slots=True)
class Answer:
    """A whole answer, or one stream chunk (``choices`` may then be empty)."""

    model: str | None
    choices: list[Choice]
    usage: Any = None
    """LiteLLM's ``Usage`` (what its cost functions read), or None."""
    _hidden_params: dict[str, Any] = field(default_factory=dict)
    """``provider_response_model`` on chunks, as LiteLLM's stream wrapper sets it."""


def answer(
    *, model: str | None, text: str | None, finish_reason: str | None, usage: Any = None
) -> Answer:
    """An answer or chunk with one choice; ``model`` is the provider's own (dated) name."""
    return Answer(
        model=model,
        choices=[Choice(Text(text), finish_reason)],
        usage=usage,
        _hidden_params={"provider_response_model": model},
    )
