"""Gemini (Google AI Studio) answers for the bench server (``POST
/v1beta/models/<model>:generateContent`` and ``:streamGenerateContent?alt=sse``): the same text
and token counts as the OpenAI-format answers, in Gemini's JSON and event-stream shapes (every
event carries the usage so far, events end with ``\\r\\n\\r\\n``, as recorded from the real API).
"""

from __future__ import annotations

import json

PATH_MARKER = b"/models/"
STREAM_METHOD = b":streamGenerateContent"
PROMPT_TOKENS = 12


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def model_of(path: bytes) -> str | None:
    """The model named in a ``.../models/<model>:<method>`` path, or None for another path."""
    _, marker, rest = path.partition(PATH_MARKER)
    name, colon, _method = rest.partition(b":")
    return name.decode() if marker and colon and name else None


def _answer(model: str, text: str, finish: str | None, output: int) -> dict[str, object]:
    candidate: dict[str, object] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": output,
            "totalTokenCount": PROMPT_TOKENS + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}],
        },
        "modelVersion": model,
        "responseId": "bench-response-id",
    }


def completion_body(model: str, texts: list[str]) -> bytes:
    """The non-streamed answer."""
    return _compact(_answer(model, "".join(texts), "STOP", len(texts)))


def stream_events(model: str, texts: list[str]) -> list[bytes]:
    """Each SSE event framed as one HTTP chunk, the terminating chunk last."""
    last = len(texts) - 1
    data = [
        b"data: %s\r\n\r\n"
        % _compact(_answer(model, text, "STOP" if index == last else None, index + 1))
        for index, text in enumerate(texts)
    ]
    return [b"%x\r\n%s\r\n" % (len(event), event) for event in data] + [b"0\r\n\r\n"]
