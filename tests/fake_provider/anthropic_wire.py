"""Anthropic messages, as api.anthropic.com sends them (POST /v1/messages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .replies import ErrorKind
from .wire import Call, HttpReply, SseEvent, compact_json, retry_headers, retry_seconds, split_text

_DATED_MODELS = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
}
_CONTEXT_WINDOW = 200_000

# The 503 does not come from the API but from the proxy in front of it: plain text, no JSON.
_UPSTREAM_RESET = (
    "upstream connect error or disconnect/reset before headers. "
    "reset reason: connection termination"
)

_ERRORS: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.INVALID_API_KEY: (401, "authentication_error"),
    ErrorKind.PERMISSION_DENIED: (403, "permission_error"),
    ErrorKind.MODEL_NOT_FOUND: (404, "not_found_error"),
    ErrorKind.RATE_LIMITED: (429, "rate_limit_error"),
    ErrorKind.QUOTA_EXCEEDED: (400, "invalid_request_error"),
    ErrorKind.CONTEXT_LENGTH_EXCEEDED: (400, "invalid_request_error"),
    ErrorKind.SERVER_ERROR: (500, "api_error"),
    ErrorKind.OVERLOADED: (529, "overloaded_error"),
}


def _message(call: Call, kind: ErrorKind) -> str:
    if kind is ErrorKind.INVALID_API_KEY:
        return "invalid x-api-key"
    if kind is ErrorKind.PERMISSION_DENIED:
        return "Your API key does not have permission to use the specified resource."
    if kind is ErrorKind.MODEL_NOT_FOUND:
        return f"model: {call.model}"
    if kind is ErrorKind.RATE_LIMITED:
        return (
            "Number of requests has exceeded your per-minute rate limit "
            "(https://docs.anthropic.com/en/api/rate-limits); see the response headers for current "
            "usage. Please try again later or contact sales at "
            "https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
            "increase."
        )
    if kind is ErrorKind.QUOTA_EXCEEDED:
        return (
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
            "Billing to upgrade or purchase credits."
        )
    if kind is ErrorKind.CONTEXT_LENGTH_EXCEEDED:
        return f"prompt is too long: {call.reply.prompt_tokens} tokens > {_CONTEXT_WINDOW} maximum"
    if kind is ErrorKind.SERVER_ERROR:
        return "Internal server error"
    return "Overloaded"


class AnthropicWire:
    sse_terminator = "\n\n"

    def completion(self, call: Call) -> HttpReply:
        reply = call.reply
        body = {
            "model": self._model(call),
            "id": self._message_id(call),
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": self._usage(call, reply.completion_tokens),
        }
        headers = self._headers(call, "application/json") | self._rate_limit_headers(call, False)
        return HttpReply(200, headers, compact_json(body).encode())

    def stream_headers(self, call: Call) -> dict[str, str]:
        headers = self._headers(call, "text/event-stream; charset=utf-8")
        return headers | {"cache-control": "no-cache"} | self._rate_limit_headers(call, False)

    def stream_events(self, call: Call) -> list[SseEvent]:
        reply = call.reply

        def event(name: str, data: dict[str, Any]) -> SseEvent:
            # The API pads its JSON with spaces before the last brace; clients must cope.
            text = compact_json(data)
            return SseEvent(text[:-1] + " " * call.ids.integer(0, 15) + "}", name)

        message: dict[str, Any] = {
            "model": self._model(call),
            "id": self._message_id(call),
            "type": "message",
            "role": "assistant",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(call, 1),
        }
        events = [
            event("message_start", {"type": "message_start", "message": message}),
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            SseEvent('{"type": "ping"}', "ping"),
        ]
        for piece in split_text(reply.text, reply.chunks):
            delta = {"type": "text_delta", "text": piece}
            events.append(
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            )
        final_usage = {
            "input_tokens": reply.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": reply.completion_tokens,
        }
        events += [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": final_usage,
                },
            ),
            event("message_stop", {"type": "message_stop"}),
        ]
        return events

    def error(self, call: Call, kind: ErrorKind) -> HttpReply:
        if kind is ErrorKind.UNAVAILABLE:
            headers = self._edge_headers(call, "text/plain") | retry_headers(call.reply)
            return HttpReply(503, headers, _UPSTREAM_RESET.encode())
        status, error_type = _ERRORS[kind]
        request_id = self._request_id(call)
        body = {
            "type": "error",
            "error": {"type": error_type, "message": _message(call, kind)},
            "request_id": request_id,
        }
        headers = self._headers(call, "application/json", request_id)
        headers["x-should-retry"] = (
            "true" if status in (408, 409, 429) or status >= 500 else "false"
        )
        if kind is ErrorKind.RATE_LIMITED:
            headers |= self._rate_limit_headers(call, True)
        return HttpReply(status, headers | retry_headers(call.reply), compact_json(body).encode())

    @staticmethod
    def _model(call: Call) -> str:
        return call.reply.model or _DATED_MODELS.get(call.model, call.model)

    @staticmethod
    def _message_id(call: Call) -> str:
        return "msg_01" + call.ids.base62(22)

    @staticmethod
    def _request_id(call: Call) -> str:
        return "req_011C" + call.ids.base62(20)

    @staticmethod
    def _usage(call: Call, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": call.reply.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    @staticmethod
    def _edge_headers(call: Call, content_type: str) -> dict[str, str]:
        return {
            "content-type": content_type,
            "server": "cloudflare",
            "cf-ray": call.ids.hex(16) + "-SJC",
            "cf-cache-status": "DYNAMIC",
            "x-robots-tag": "none",
            "via": "1.1 google",
        }

    def _headers(self, call: Call, content_type: str, request_id: str = "") -> dict[str, str]:
        return self._edge_headers(call, content_type) | {
            "request-id": request_id or self._request_id(call),
            "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
            "x-envoy-upstream-service-time": str(call.ids.integer(300, 2000)),
        }

    @staticmethod
    def _rate_limit_headers(call: Call, exhausted: bool) -> dict[str, str]:
        now = datetime.fromtimestamp(call.created, UTC)
        wait = retry_seconds(call.reply, 7) if exhausted else 1
        reset = (now + timedelta(seconds=wait)).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers: dict[str, str] = {}
        for name, limit in (
            ("input-tokens", 2_000_000),
            ("output-tokens", 400_000),
            ("requests", 4_000),
            ("tokens", 2_400_000),
        ):
            remaining = 0 if exhausted and name == "requests" else limit - 1
            headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = reset
        return headers
