"""The direct transport (aiecs_llm/direct) loses nothing: every conformance recording (OpenAI,
Anthropic, Gemini: each carried by the direct path) gives the same ``LLMResponse`` (content,
model, tokens, cost, finish reason) or the same error (class, status, code, message,
retry-after) through it as through ``litellm.acompletion``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import aiecs_llm
from aiecs_llm import direct
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


async def _outcome(row: Row, tmp_path: Path, *, use_direct: bool) -> dict[str, Any]:
    target = _interactions(row)[row.target_interaction]
    directory = tmp_path / ("direct" if use_direct else "litellm")
    directory.mkdir()
    cassette_path = _cassette(directory, row, [target])
    client = _client(row, target["request"]["uri"], max_retries=0)
    assert (client._direct is not None) is use_direct
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
        if use_direct:
            # Every spec provider (OpenAI, Anthropic, Gemini) is served directly.
            went_direct = client._direct is not None and client._direct._transport is not None
            assert went_direct, f"the {row.provider} call did not take the direct path"
    finally:
        await client.close()
    return outcome


@pytest.mark.parametrize("row", _params())
async def test_same_outcome_through_both_paths(
    row: Row | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = _skip_if_missing(row)
    monkeypatch.setenv(direct.ENABLE_ENV, "0")
    through_litellm = await _outcome(row, tmp_path, use_direct=False)
    monkeypatch.setenv(direct.ENABLE_ENV, "1")
    through_direct = await _outcome(row, tmp_path, use_direct=True)
    assert through_direct == through_litellm
