"""The structured log event emitted once per request.

The library never configures logging; it only emits structlog events, which the application
routes wherever it routes the rest of its logs. Prompts and answers are left out unless the
client was built with ``log_content=True``; keys are never included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from aiecs_llm.errors import LLMClientError
from aiecs_llm.types import LLMMessage, LLMResponse

REQUEST_COMPLETED = "llm.request.completed"
REQUEST_FAILED = "llm.request.failed"

_log = structlog.get_logger("aiecs_llm")


def request_completed(
    response: LLMResponse,
    *,
    stream: bool,
    messages: Sequence[LLMMessage] | None,
) -> None:
    """Log one successful request (content only when ``messages`` is given: opt-in)."""
    fields: dict[str, Any] = {
        "provider": response.provider,
        "model": response.model,
        "requested_model": response.requested_model,
        "stream": stream,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "cost_usd": response.cost_estimate,
        "latency_ms": _ms(response.response_time),
        "finish_reason": response.finish_reason,
    }
    if stream:
        fields["time_to_first_chunk_ms"] = _ms(response.time_to_first_chunk)
    if messages is not None:
        fields["messages"] = [message.model_dump() for message in messages]
        fields["content"] = response.content
    _log.info(REQUEST_COMPLETED, **fields)


def request_failed(
    error: LLMClientError,
    *,
    stream: bool,
    latency: float,
    messages: Sequence[LLMMessage] | None,
) -> None:
    """Log one failed request; the error's message is already free of keys."""
    fields: dict[str, Any] = {
        "provider": error.provider,
        "model": error.model,
        "stream": stream,
        "error": type(error).__name__,
        "status_code": error.status_code,
        "latency_ms": _ms(latency),
        "detail": error.message[:500],
    }
    if messages is not None:
        fields["messages"] = [message.model_dump() for message in messages]
    _log.warning(REQUEST_FAILED, **fields)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
