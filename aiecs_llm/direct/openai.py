"""OpenAI's chat completions wire format (also any OpenAI-compatible server)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from aiecs_llm.direct.answers import Answer, answer
from aiecs_llm.providers import engine as _litellm

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def request(
    *,
    model: str,
    messages: list[dict[str, str]],
    optional: Mapping[str, Any],
    key: str,
    base_url: str | None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and JSON body, as LiteLLM's OpenAI path (the openai SDK) sends them."""
    body: dict[str, Any] = {"model": model, "messages": messages}
    for name, value in optional.items():
        if name == "stream" and not value:
            continue  # the SDK leaves out a false stream flag; recordings match on the body
        if name == "extra_body":
            body.update(value)  # the SDK merges extra_body into the top level
        else:
            body[name] = value
    # LiteLLM's order: the call's api_base, then the environment, then OpenAI's endpoint.
    base = (
        base_url
        or _litellm.litellm().api_base
        or os.environ.get("OPENAI_BASE_URL")
        or os.environ.get("OPENAI_API_BASE")
        or DEFAULT_BASE_URL
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return f"{base.rstrip('/')}/chat/completions", headers, body


def completion(data: Any, status: int, headers: Mapping[str, str]) -> Answer:
    """A whole answer from its JSON body. A missing usage report reads as zero tokens, as
    LiteLLM reads it.
    """
    del status, headers  # the same signature as the other wire formats
    choices = data.get("choices") or []
    if not choices:
        return Answer(model=data.get("model"), choices=[], usage=None)
    first = choices[0]
    reason = first.get("finish_reason")
    return answer(
        model=data.get("model"),
        text=(first.get("message") or {}).get("content"),
        finish_reason=_litellm.finish_reason(reason) if reason else None,
        usage=_litellm.usage(data.get("usage") or {}),
    )


def stream_parser(provider: str, model: str) -> Callable[[Any], Answer | None]:
    """Reads one stream event (a ``data:`` line's JSON) into a chunk, None for none."""

    def parse(data: Any) -> Answer | None:
        error = data.get("error")
        if error is not None:
            # An error reported inside the stream: LiteLLM's classes, as for an HTTP error.
            code = error.get("code") if isinstance(error, dict) else None
            raise _litellm.provider_error(
                provider=provider,
                model=model,
                status=code if isinstance(code, int) else 500,
                text=str(data),
                headers={},
            )
        choices = data.get("choices") or []
        usage = data.get("usage")
        counted = _litellm.usage(usage) if usage else None
        if not choices:
            if counted is None:
                return None
            return Answer(
                model=data.get("model"),
                choices=[],
                usage=counted,
                _hidden_params={"provider_response_model": data.get("model")},
            )
        first = choices[0]
        reason = first.get("finish_reason")
        return answer(
            model=data.get("model"),
            text=(first.get("delta") or {}).get("content"),
            finish_reason=_litellm.finish_reason(reason) if reason else None,
            usage=counted,
        )

    return parse
