"""Anthropic's Messages API, through LiteLLM's own ``AnthropicConfig`` transformation (request,
whole answer) and its stream event parser: the same objects ``litellm.acompletion`` builds,
without its per-call logging, pricing and stream wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiecs_llm.direct.answers import Answer, answer
from aiecs_llm.providers import engine as _litellm

request = _litellm.anthropic_request


def completion(data: Any, status: int, headers: Mapping[str, str]) -> Any:
    """LiteLLM's ``ModelResponse`` for the answer."""
    return _litellm.anthropic_completion(data, status, headers)


def stream_parser(provider: str, model: str) -> Callable[[Any], Answer | None]:
    """Reads one stream event into a chunk, with LiteLLM's per-stream parser (usage merged
    from ``message_start`` and ``message_delta``, ``end_turn`` -> ``stop``, error events raised
    as ``AnthropicError``).
    """
    del provider, model  # the parser needs neither
    events = _litellm.anthropic_chunk_parser()

    def parse(data: Any) -> Answer | None:
        chunk = events.chunk_parser(data)
        choices = chunk.choices
        first = choices[0] if choices else None
        text = first.delta.content if first is not None else None
        reason = first.finish_reason if first is not None else None
        usage = getattr(chunk, "usage", None)
        if not text and not reason and usage is None:
            return None
        return answer(model=events.served_model, text=text, finish_reason=reason, usage=usage)

    return parse
