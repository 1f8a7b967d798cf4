"""The fast transport (aiecs_llm/transport/fast.py) loses nothing: every conformance recording
gives the same ``LLMResponse`` (content, model, tokens, cost, finish reason) or the same error
(class, status, code, message, retry-after) with the fast transport on as through
``litellm.acompletion`` alone. OpenAI and Anthropic calls take the fast path; Gemini calls go
through ``acompletion`` either way (its config cannot build a request).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import aiecs_llm
from aiecs_llm.transport import fast
from tests.conformance_cassettes import Row
from tests.test_conformance import (
    REASONING_TEMPERATURE,
    _call,
    _cassette,
    _client,
    _interactions,
    _params,
    _recorder,
    _skip_if_missing,
)

# Differ between any two calls, whatever the path.
_TIMINGS = ("response_time", "time_to_first_chunk")


# The providers whose calls the fast transport carries.
FAST_PROVIDERS = frozenset({"openai", "anthropic"})


async def _outcome(row: Row, tmp_path: Path, *, use_fast: bool) -> dict[str, Any]:
    target = _interactions(row)[row.target_interaction]
    directory = tmp_path / ("fast" if use_fast else "litellm")
    directory.mkdir()
    cassette_path = _cassette(directory, row, [target])
    client = _client(row, target["request"]["uri"], max_retries=0)
    assert (client._fast is not None) is use_fast
    try:
        with _recorder().use_cassette(str(cassette_path)) as cassette:
            try:
                response, streamed = await _call(
                    client, row, temperature=REASONING_TEMPERATURE.get(row.file)
                )
            except aiecs_llm.LLMClientError as error:
                outcome: dict[str, Any] = {
                    "error": type(error).__name__,
                    **{
                        name: getattr(error, name)
                        for name in ("message", "status_code", "code", "retry_after", "provider")
                    },
                }
            else:
                fields = response.model_dump(exclude=set(_TIMINGS))
                outcome = {"response": fields, "streamed": streamed}
            outcome["requests"] = cassette.play_count
        if use_fast:
            went_fast = client._fast is not None and client._fast.requests_sent > 0
            assert went_fast is (row.provider in FAST_PROVIDERS), "not the path under test"
    finally:
        await client.close()
    return outcome


@pytest.mark.parametrize("row", _params())
async def test_same_outcome_through_both_paths(
    row: Row | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = _skip_if_missing(row)
    monkeypatch.setenv(fast.ENABLE_ENV, "0")
    through_litellm = await _outcome(row, tmp_path, use_fast=False)
    monkeypatch.setenv(fast.ENABLE_ENV, "1")
    through_fast = await _outcome(row, tmp_path, use_fast=True)
    assert through_fast == through_litellm
