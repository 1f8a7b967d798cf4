"""OpenAI chat completions, as api.openai.com sends them (POST /v1/chat/completions)."""

from __future__ import annotations

import json
from typing import Any

from .replies import ErrorKind
from .wire import (
    Call,
    HttpReply,
    SseEvent,
    compact_json,
    retry_headers,
    retry_seconds,
    split_text,
)

_DATED_MODELS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
}
_CONTEXT_WINDOW = 128_000

# status, error.type, error.code, error.param; the message is built per request
_ERRORS: dict[ErrorKind, tuple[int, str, str | None, str | None]] = {
    ErrorKind.INVALID_API_KEY: (401, "invalid_request_error", "invalid_api_key", None),
    ErrorKind.PERMISSION_DENIED: (
        403,
        "request_forbidden",
        "unsupported_country_region_territory",
        None,
    ),
    ErrorKind.MODEL_NOT_FOUND: (404, "invalid_request_error", "model_not_found", None),
    ErrorKind.RATE_LIMITED: (429, "requests", "rate_limit_exceeded", None),
    ErrorKind.QUOTA_EXCEEDED: (429, "insufficient_quota", "insufficient_quota", None),
    ErrorKind.CONTEXT_LENGTH_EXCEEDED: (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    ),
    ErrorKind.SERVER_ERROR: (500, "server_error", None, None),
    ErrorKind.UNAVAILABLE: (503, "server_error", None, None),
    ErrorKind.OVERLOADED: (529, "server_error", None, None),
}


def _mask_key(key: str) -> str:
    # OpenAI echoes the key it rejected, masked; keep it short enough to never contain the key.
    return f"{key[:3]}*****{key[-4:]}" if len(key) > 4 else "*****"


def _message(call: Call, kind: ErrorKind) -> str:
    reply = call.reply
    if kind is ErrorKind.INVALID_API_KEY:
        return (
            f"Incorrect API key provided: {_mask_key(call.api_key)}. You can find your API key "
            "at https://platform.openai.com/account/api-keys."
        )
    if kind is ErrorKind.PERMISSION_DENIED:
        return "Country, region, or territory not supported"
    if kind is ErrorKind.MODEL_NOT_FOUND:
        return f"The model `{call.model}` does not exist or you do not have access to it."
    if kind is ErrorKind.RATE_LIMITED:
        return (
            f"Rate limit reached for {call.model} in organization org-{call.ids.base62(24)} on "
            f"requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in "
            f"{retry_seconds(reply, 7)}s. Visit https://platform.openai.com/account/rate-limits "
            "to learn more."
        )
    if kind is ErrorKind.QUOTA_EXCEEDED:
        return (
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors."
        )
    if kind is ErrorKind.CONTEXT_LENGTH_EXCEEDED:
        return (
            f"This model's maximum context length is {_CONTEXT_WINDOW} tokens. However, your "
            f"messages resulted in {reply.prompt_tokens} tokens. Please reduce the length of the "
            "messages."
        )
    if kind is ErrorKind.SERVER_ERROR:
        return "The server had an error while processing your request. Sorry about that!"
    return "The server is overloaded or not ready yet."


class OpenAIWire:
    sse_terminator = "\n\n"

    def completion(self, call: Call) -> HttpReply:
        reply = call.reply
        body = {
            "id": self._completion_id(call),
            "object": "chat.completion",
            "created": call.created,
            "model": self._model(call),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(call),
            "service_tier": "default",
            "system_fingerprint": self._fingerprint(call),
        }
        # The real service pretty-prints non-streamed JSON with two spaces.
        text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
        headers = self._headers(call, "application/json") | self._rate_limit_headers(call, False)
        return HttpReply(200, headers, text.encode())

    def stream_headers(self, call: Call) -> dict[str, str]:
        content_type = "text/event-stream; charset=utf-8"
        return self._headers(call, content_type) | self._rate_limit_headers(call, False)

    def stream_events(self, call: Call) -> list[SseEvent]:
        reply = call.reply
        completion_id = self._completion_id(call)
        model = self._model(call)
        fingerprint = self._fingerprint(call)

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> SseEvent:
            body: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": call.created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fingerprint,
                "choices": choices,
            }
            # Only with include_usage does every chunk carry "usage" (null until the last one).
            if call.include_usage:
                body["usage"] = usage
            body["obfuscation"] = call.ids.base62(call.ids.integer(2, 12))
            return SseEvent(compact_json(body))

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
        events += [
            chunk([choice({"content": piece})]) for piece in split_text(reply.text, reply.chunks)
        ]
        events.append(chunk([choice({}, "stop")]))
        if call.include_usage:
            events.append(chunk([], self._usage(call)))
        events.append(SseEvent("[DONE]"))
        return events

    def error(self, call: Call, kind: ErrorKind) -> HttpReply:
        status, error_type, code, param = _ERRORS[kind]
        body = {
            "error": {
                "message": _message(call, kind),
                "type": error_type,
                "param": param,
                "code": code,
            }
        }
        # Errors come from a different layer than completions and use a four-space indent.
        text = json.dumps(body, indent=4, ensure_ascii=False) + "\n"
        headers = self._headers(call, "application/json; charset=utf-8") | {"vary": "Origin"}
        if kind in (ErrorKind.RATE_LIMITED, ErrorKind.QUOTA_EXCEEDED):
            headers |= self._rate_limit_headers(call, True)
        return HttpReply(status, headers | retry_headers(call.reply), text.encode())

    @staticmethod
    def _model(call: Call) -> str:
        return call.reply.model or _DATED_MODELS.get(call.model, call.model)

    @staticmethod
    def _completion_id(call: Call) -> str:
        return "chatcmpl-" + call.ids.base62(29)

    @staticmethod
    def _fingerprint(call: Call) -> str:
        return "fp_" + call.ids.hex(10)

    @staticmethod
    def _usage(call: Call) -> dict[str, Any]:
        reply = call.reply
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _headers(call: Call, content_type: str) -> dict[str, str]:
        ids = call.ids
        return {
            "content-type": content_type,
            "server": "cloudflare",
            "access-control-expose-headers": "X-Request-ID",
            "openai-processing-ms": str(ids.integer(150, 900)),
            "openai-version": "2020-10-01",
            "x-envoy-upstream-service-time": str(ids.integer(150, 900)),
            "x-request-id": "req_" + ids.hex(32),
            "x-openai-proxy-wasm": "v0.1",
            "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
            "x-content-type-options": "nosniff",
            "cf-cache-status": "DYNAMIC",
            "cf-ray": ids.hex(16) + "-SJC",
            "alt-svc": 'h3=":443"; ma=86400',
        }

    @staticmethod
    def _rate_limit_headers(call: Call, exhausted: bool) -> dict[str, str]:
        seconds = retry_seconds(call.reply, 7)
        return {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-requests": "0" if exhausted else "499",
            "x-ratelimit-remaining-tokens": "199950" if exhausted else "199970",
            "x-ratelimit-reset-requests": f"{seconds}s" if exhausted else "120ms",
            "x-ratelimit-reset-tokens": "15ms",
        }
