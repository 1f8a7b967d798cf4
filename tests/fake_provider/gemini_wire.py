"""Gemini on Google AI Studio, as generativelanguage.googleapis.com sends it.

POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse.
"""

from __future__ import annotations

import json
from typing import Any

from .replies import ErrorKind
from .wire import (
    Call,
    HttpReply,
    SseEvent,
    retry_seconds,
    running_counts,
    split_text,
)

_CONTEXT_WINDOW = 1_048_576
_API_KEY_INVALID = "API key not valid. Please pass a valid API key."

# status, google.rpc status name
_ERRORS: dict[ErrorKind, tuple[int, str]] = {
    # AI Studio answers a bad key with 400, never 401.
    ErrorKind.INVALID_API_KEY: (400, "INVALID_ARGUMENT"),
    ErrorKind.PERMISSION_DENIED: (403, "PERMISSION_DENIED"),
    ErrorKind.MODEL_NOT_FOUND: (404, "NOT_FOUND"),
    ErrorKind.RATE_LIMITED: (429, "RESOURCE_EXHAUSTED"),
    ErrorKind.QUOTA_EXCEEDED: (429, "RESOURCE_EXHAUSTED"),
    ErrorKind.CONTEXT_LENGTH_EXCEEDED: (400, "INVALID_ARGUMENT"),
    ErrorKind.SERVER_ERROR: (500, "INTERNAL"),
    ErrorKind.UNAVAILABLE: (503, "UNAVAILABLE"),
    ErrorKind.OVERLOADED: (529, "UNAVAILABLE"),
}


def _message(call: Call, kind: ErrorKind) -> str:
    if kind is ErrorKind.INVALID_API_KEY:
        return _API_KEY_INVALID
    if kind is ErrorKind.PERMISSION_DENIED:
        return "The caller does not have permission"
    if kind is ErrorKind.MODEL_NOT_FOUND:
        method = "streamGenerateContent" if call.stream else "generateContent"
        return (
            f"models/{call.model} is not found for API version v1beta, or is not supported for "
            f"{method}. Call ModelService.ListModels to see the list of available models and their "
            "supported methods."
        )
    if kind is ErrorKind.RATE_LIMITED:
        return (
            "Resource exhausted. Please try again later. Please refer to "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
        )
    if kind is ErrorKind.QUOTA_EXCEEDED:
        return (
            "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
        )
    if kind is ErrorKind.CONTEXT_LENGTH_EXCEEDED:
        return (
            f"The input token count ({call.reply.prompt_tokens}) exceeds the maximum number of "
            f"tokens allowed ({_CONTEXT_WINDOW})."
        )
    if kind is ErrorKind.SERVER_ERROR:
        return (
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting"
        )
    return "The model is overloaded. Please try again later."


def _details(call: Call, kind: ErrorKind) -> list[dict[str, Any]]:
    if kind is ErrorKind.INVALID_API_KEY:
        return [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": _API_KEY_INVALID,
            },
        ]
    reply = call.reply
    asked = reply.retry_after is not None or reply.retry_after_ms is not None
    if kind is ErrorKind.QUOTA_EXCEEDED or (kind is ErrorKind.RATE_LIMITED and asked):
        # Google states the back-off in the body (RetryInfo, a protobuf Duration such as "7s"
        # or "0.020s"), never in a Retry-After header.
        if reply.retry_after_ms is not None:
            delay = f"{reply.retry_after_ms / 1000:.3f}s"
        else:
            delay = f"{retry_seconds(reply, 41)}s"
        return [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
    return []


class GeminiWire:
    sse_terminator = "\r\n\r\n"

    def completion(self, call: Call) -> HttpReply:
        reply = call.reply
        response_id = call.ids.base64url(23)
        body = self._response(call, reply.text, reply.completion_tokens, response_id, finished=True)
        # Google pretty-prints non-streamed JSON with two spaces and a final newline.
        text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
        return HttpReply(200, self._headers(call, "application/json; charset=UTF-8"), text.encode())

    def stream_headers(self, call: Call) -> dict[str, str]:
        return self._headers(call, "text/event-stream") | {"content-disposition": "attachment"}

    def stream_events(self, call: Call) -> list[SseEvent]:
        reply = call.reply
        pieces = split_text(reply.text, reply.chunks)
        counts = running_counts(reply.completion_tokens, len(pieces))
        response_id = call.ids.base64url(23)
        events = []
        for index, (piece, count) in enumerate(zip(pieces, counts, strict=True)):
            last = index == len(pieces) - 1
            body = self._response(call, piece, count, response_id, finished=last)
            # Streamed chunks use ", " nowhere but ": " after keys, exactly like this.
            events.append(SseEvent(json.dumps(body, separators=(",", ": "), ensure_ascii=False)))
        return events

    def error(self, call: Call, kind: ErrorKind) -> HttpReply:
        status, status_name = _ERRORS[kind]
        error: dict[str, Any] = {
            "code": status,
            "message": _message(call, kind),
            "status": status_name,
        }
        details = _details(call, kind)
        if details:
            error["details"] = details
        text = json.dumps({"error": error}, indent=2, ensure_ascii=False) + "\n"
        headers = self._headers(call, "application/json; charset=UTF-8")
        return HttpReply(status, headers, text.encode())

    @staticmethod
    def _response(
        call: Call, text: str, output_tokens: int, response_id: str, *, finished: bool
    ) -> dict[str, Any]:
        reply = call.reply
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if finished:
            candidate["finishReason"] = "STOP"
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": reply.prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": reply.prompt_tokens + output_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
            },
            # AI Studio echoes the model alias as it was asked for, e.g. "gemini-2.5-flash".
            "modelVersion": reply.model or call.model,
            "responseId": response_id,
        }

    @staticmethod
    def _headers(call: Call, content_type: str) -> dict[str, str]:
        return {
            "content-type": content_type,
            "vary": "Origin, X-Origin, Referer",
            "server": "scaffolding on HTTPServer2",
            "server-timing": f"gfet4t7; dur={call.ids.integer(300, 1500)}",
            "x-xss-protection": "0",
            "x-frame-options": "SAMEORIGIN",
            "x-content-type-options": "nosniff",
            "alt-svc": 'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000',
        }
