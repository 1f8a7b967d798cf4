"""The direct Gemini stream reads plain text events itself (``StreamParser._plain``) and
computes their usage once, at the end; everything else goes through LiteLLM's parser. Both
readings must agree chunk by chunk and in the usage total: random streams of plain and
not-quite-plain events (thoughts, two parts, other finish reasons, blocked prompts, missing or
zero counts, cached tokens coming and going) are read both ways and compared.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from aiecs_llm.direct import gemini

MESSAGES = [{"role": "user", "content": "hello there"}]


def _candidate(rng: random.Random, last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if rng.random() < 0.95:
        parts: list[dict[str, Any]] = [{"text": rng.choice(["hé ", "x", "", " a\nb", "😀"])}]
        if rng.random() < 0.05:
            parts.append({"text": "b"})
        if rng.random() < 0.05:
            parts = [{"text": "think", "thought": True}]
        content: dict[str, Any] = {"parts": parts}
        if rng.random() < 0.8:
            content["role"] = "model"
        candidate["content"] = content
    if last or rng.random() < 0.05:
        candidate["finishReason"] = rng.choice(["STOP", "STOP", "MAX_TOKENS", "SAFETY"])
    if rng.random() < 0.7:
        candidate["index"] = 0
    return candidate


def _usage(rng: random.Random, produced: int) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    if rng.random() < 0.95:
        usage["promptTokenCount"] = rng.choice([12, 12, 0])
    if rng.random() < 0.95:
        usage["candidatesTokenCount"] = produced + rng.choice([0, 1, 1, 2])
    usage["totalTokenCount"] = usage.get("promptTokenCount", 0) + usage.get(
        "candidatesTokenCount", 0
    )
    if rng.random() < 0.3:
        usage["thoughtsTokenCount"] = rng.choice([0, 5])
    if rng.random() < 0.3:
        usage["cachedContentTokenCount"] = rng.choice([0, 4])
    if rng.random() < 0.5:
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": 12}]
    if rng.random() < 0.1:
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": 3}]
    if rng.random() < 0.03:
        usage["trafficType"] = "ON_DEMAND"
    return usage


def _stream(rng: random.Random) -> list[str]:
    lines: list[str] = []
    produced = 0
    count = rng.randint(1, 6)
    for index in range(count):
        event: dict[str, Any] = {}
        if rng.random() < 0.95:
            event["candidates"] = [_candidate(rng, index == count - 1)]
        if rng.random() < 0.9:
            event["usageMetadata"] = usage = _usage(rng, produced)
            produced = usage.get("candidatesTokenCount", produced)
        if rng.random() < 0.9:
            event["modelVersion"] = rng.choice(["gemini-2.5-flash", "gemini-2.5-flash@001", ""])
        if rng.random() < 0.9:
            event["responseId"] = "r1"
        if rng.random() < 0.02:
            event["promptFeedback"] = {"blockReason": "SAFETY"}
        lines += ["data: " + json.dumps(event, ensure_ascii=rng.random() < 0.5), ""]
    return lines


def _read(lines: list[str], body: dict[str, Any], *, plain: bool) -> list[str]:
    parser = gemini.StreamParser({"max_tokens": 64}, body, MESSAGES)
    if not plain:
        parser._plain = lambda text: None  # type: ignore[method-assign]
    seen: list[str] = []
    try:
        seen += [repr(parser.line(line)) for line in lines]
        seen += [repr(parser.leftover()), repr(parser.unanswered()), repr(parser.continuation())]
        seen.append(repr(parser.total()))
    # The failure itself is what is compared.
    except Exception as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
    return seen


@pytest.mark.parametrize("seed", range(4))
def test_plain_events_read_as_litellm_reads_them(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(250):
        lines = _stream(rng)
        body: dict[str, Any] = {"contents": []}
        if rng.random() < 0.5:
            body["generationConfig"] = {"max_output_tokens": 64}
        assert _read(lines, body, plain=True) == _read(lines, body, plain=False), lines
