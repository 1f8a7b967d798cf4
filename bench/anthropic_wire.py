"""Anthropic Messages API answers for the bench server (``POST /v1/messages``): the same text
and token counts as the OpenAI-format answers, in Anthropic's JSON and event-stream shapes.
"""

from __future__ import annotations

import json

PATH_SUFFIX = b"/v1/messages"
DATED_MODELS = {"claude-haiku-4-5": "claude-haiku-4-5-20251001"}


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _message(model: str, content: list[dict[str, str]], stop: str | None, output: int) -> dict:
    return {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output,
        },
    }


def completion_body(model: str, texts: list[str]) -> bytes:
    """The non-streamed answer."""
    content = [{"type": "text", "text": "".join(texts)}]
    return _compact(_message(model, content, "end_turn", len(texts)))


def stream_events(model: str, texts: list[str]) -> list[bytes]:
    """Each SSE event framed as one HTTP chunk, the terminating chunk last."""
    events: list[tuple[str, dict[str, object]]] = [
        ("message_start", {"type": "message_start", "message": _message(model, [], None, 1)}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        )
        for text in texts
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(texts)},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    data = [b"event: %s\ndata: %s\n\n" % (name.encode(), _compact(body)) for name, body in events]
    return [b"%x\r\n%s\r\n" % (len(event), event) for event in data] + [b"0\r\n\r\n"]
