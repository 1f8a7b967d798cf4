"""Byte builders for the parity matrix: OpenAI, Anthropic and Gemini answers, stream events and
error bodies, spelled out by hand so that each test shows exactly what went over the wire.

``sse(events, eol=...)`` frames events with any line ending (``\\n``, ``\\r\\n`` or a bare
``\\r``, all legal SSE), and ``split_data`` spreads one event's JSON over several ``data:``
lines (legal too: a reader joins them with ``\\n``).
"""

from __future__ import annotations

import json
from typing import Any, Final

OPENAI_MODEL: Final = "gpt-4o-mini-2024-07-18"
ANTHROPIC_MODEL: Final = "claude-sonnet-4-5-20250929"
GEMINI_MODEL: Final = "gemini-2.5-flash"
PROMPT_TOKENS: Final = 5
COMPLETION_TOKENS: Final = 2


# -- framing -------------------------------------------------------------------------------


def sse_event(
    data: Any, *, event: str | None = None, eol: str = "\n", split: bool = False
) -> bytes:
    """One server-sent event: optional ``event:`` line, ``data:`` line(s), blank line.

    ``split`` writes the JSON over two ``data:`` lines (cut at its first ``,``).
    """
    text = data if isinstance(data, str) else json.dumps(data)
    lines = [f"event: {event}"] if event else []
    if split and "," in text:
        head, tail = text.split(",", 1)
        lines += [f"data: {head},", f"data: {tail}"]
    else:
        lines.append(f"data: {text}")
    return (eol.join(lines) + eol + eol).encode()


# -- OpenAI ----------------------------------------------------------------------------------


def openai_completion(
    content: str = "Hello",
    *,
    finish_reason: str | None = "stop",
    model: str = OPENAI_MODEL,
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-parity",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


def openai_chunk(
    content: str | None = None,
    *,
    finish_reason: str | None = None,
    usage: bool = False,
    model: str = OPENAI_MODEL,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-parity",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [],
    }
    if not usage:
        delta = {"content": content} if content is not None else {}
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    else:
        chunk["usage"] = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        }
    return chunk


def openai_stream(
    parts: tuple[str, ...] = ("Hel", "lo"),
    *,
    finish_reason: str | None = "stop",
    eol: str = "\n",
    split: bool = False,
) -> list[bytes]:
    """A whole stream: a role chunk, one chunk per part, the finish, usage, ``[DONE]``."""
    first = openai_chunk()
    first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
    chunks = [first, *(openai_chunk(part) for part in parts)]
    chunks.append(openai_chunk(finish_reason=finish_reason))
    chunks.append(openai_chunk(usage=True))
    events = [sse_event(chunk, eol=eol, split=split) for chunk in chunks]
    return [*events, sse_event("[DONE]", eol=eol)]


def openai_error(
    message: str, *, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# -- Anthropic -------------------------------------------------------------------------------


def anthropic_message(
    content: str = "Hello", *, stop_reason: str | None = "end_turn", model: str = ANTHROPIC_MODEL
) -> dict[str, Any]:
    return {
        "id": "msg_parity",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": content}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
    }


def anthropic_stream_head(*, eol: str = "\n", split: bool = False) -> list[bytes]:
    """``message_start`` and ``content_block_start``: what comes before any text."""
    start = anthropic_message("", stop_reason=None)
    start["content"] = []
    start["usage"] = {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}
    return [
        sse_event(
            {"type": "message_start", "message": start}, event="message_start", eol=eol, split=split
        ),
        sse_event(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            event="content_block_start",
            eol=eol,
            split=split,
        ),
    ]


def anthropic_text(text: str, *, eol: str = "\n", split: bool = False) -> bytes:
    return sse_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        event="content_block_delta",
        eol=eol,
        split=split,
    )


def anthropic_stream(
    parts: tuple[str, ...] = ("Hel", "lo"),
    *,
    stop_reason: str | None = "end_turn",
    eol: str = "\n",
    split: bool = False,
) -> list[bytes]:
    """A whole stream: start, one delta per part, block stop, ``message_delta``, stop."""
    frames = anthropic_stream_head(eol=eol, split=split)
    frames += [anthropic_text(part, eol=eol, split=split) for part in parts]
    frames.append(
        sse_event(
            {"type": "content_block_stop", "index": 0},
            event="content_block_stop",
            eol=eol,
            split=split,
        )
    )
    frames.append(
        sse_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": COMPLETION_TOKENS},
            },
            event="message_delta",
            eol=eol,
            split=split,
        )
    )
    frames.append(sse_event({"type": "message_stop"}, event="message_stop", eol=eol, split=split))
    return frames


def anthropic_error(message: str, *, kind: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


# -- Gemini ----------------------------------------------------------------------------------


def gemini_answer(
    content: str = "Hello",
    *,
    finish_reason: str | None = "STOP",
    usage: bool = True,
    model: str = GEMINI_MODEL,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": content}], "role": "model"}}
    candidate["index"] = 0
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if usage:
        answer["usageMetadata"] = {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": COMPLETION_TOKENS,
            "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS,
        }
    return answer


def gemini_stream(
    parts: tuple[str, ...] = ("Hel", "lo"),
    *,
    finish_reason: str | None = "STOP",
    eol: str = "\r\n",
    split: bool = False,
) -> list[bytes]:
    """``streamGenerateContent?alt=sse``: one event per part (the last with the finish reason
    and usage). Gemini itself frames its events with CRLF.
    """
    events = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        answer = gemini_answer(part, finish_reason=finish_reason if last else None, usage=last)
        events.append(sse_event(answer, eol=eol, split=split))
    return events


def gemini_error(message: str, *, code: int, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
