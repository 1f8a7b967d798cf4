"""Every cassette in cassettes/ replays through raw LiteLLM calling the real default endpoints.

No api_base: LiteLLM builds the real provider URLs and vcrpy answers from the recording, so a
cassette whose URI or body does not look like the real API fails here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import openai
import pytest
import vcr
import yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # after the cost-map switch: LiteLLM reads it at import
from litellm.exceptions import MidStreamFallbackError

from tests.fake_provider.cases import CASES, CASSETTES, Case
from tests.fake_provider.record import (
    FILTERED,
    SECRET_REQUEST_HEADERS,
    SECRET_RESPONSE_HEADERS,
    scrub_request,
    scrub_response,
)

litellm.suppress_debug_info = True

CASSETTE_FILES = sorted(CASSETTES.glob("*/*.yaml"))
CASE_BY_PATH = {case.path: case for case in CASES}
MATCH_ON = ["method", "scheme", "host", "port", "path", "query"]
FAKE_PROVENANCE = "local wire-format server"

# The status LiteLLM 1.110.2 reports where it differs from the HTTP status in the recording.
LITELLM_STATUS = {
    "gemini/error_401": 401,  # HTTP 400 INVALID_ARGUMENT / API_KEY_INVALID
    "gemini/error_503": 500,  # 503 UNAVAILABLE becomes InternalServerError
    "anthropic/error_529": 500,  # 529 overloaded_error becomes InternalServerError
}
# Gemini streams are requested lazily; a retryable error arrives wrapped, on the first read.
WRAPPED_IN_STREAM = {"gemini/stream_error_429"}
EXPECTED_ERROR = {
    "error_401": litellm.AuthenticationError,
    "stream_error_401": litellm.AuthenticationError,
    "error_404": litellm.NotFoundError,
    "error_429": litellm.RateLimitError,
    "stream_error_429": litellm.RateLimitError,
    "error_400_context": litellm.ContextWindowExceededError,
    "error_500": litellm.InternalServerError,
    "error_503": (litellm.ServiceUnavailableError, litellm.InternalServerError),
    "error_529": litellm.InternalServerError,
}


def _load(path: Path) -> tuple[str, dict[str, Any]]:
    """The cassette's text and its parsed YAML."""
    text = path.read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return text, data


async def _replay(case: Case) -> tuple[str, Any]:
    """Text and usage of the case's call, through LiteLLM with no api_base."""
    kwargs = case.completion_kwargs() | {"api_key": "test-key"}
    response = await litellm.acompletion(**kwargs)
    if not case.stream:
        return response.choices[0].message.content, response.usage
    chunks = [chunk async for chunk in response]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    usages = [getattr(chunk, "usage", None) for chunk in chunks]
    return text, next((usage for usage in reversed(usages) if usage), None)


def test_every_case_has_exactly_one_cassette_file() -> None:
    assert set(CASSETTE_FILES) == set(CASE_BY_PATH)


@pytest.mark.asyncio
@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_cassette_replays(path: Path) -> None:
    case = CASE_BY_PATH[path]
    text, data = _load(path)
    interactions = data["interactions"]
    assert len(interactions) == 1
    assert interactions[0]["response"]["status"]["code"] == case.http_status
    recorded_by_fake = FAKE_PROVENANCE in text.split("interactions:", 1)[0]

    with vcr.use_cassette(
        str(path), record_mode="none", match_on=MATCH_ON, allow_playback_repeats=False
    ) as cassette:
        if case.http_status == 200:
            text, usage = await _replay(case)
            assert text
            assert usage is not None
            assert usage.prompt_tokens > 0
            assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
            if recorded_by_fake:  # a --live recording says whatever the model said
                assert text == case.reply.text
                assert usage.prompt_tokens == case.reply.prompt_tokens
                assert usage.completion_tokens == case.reply.completion_tokens
        else:
            with pytest.raises(openai.APIError) as raised:
                await _replay(case)
            error = raised.value
            if case.id in WRAPPED_IN_STREAM:
                assert isinstance(error, MidStreamFallbackError)
                error = error.original_exception
            assert isinstance(error, EXPECTED_ERROR[case.name])
            expected = LITELLM_STATUS.get(case.id, case.http_status)
            assert raised.value.status_code == expected
        assert cassette.all_played


@pytest.mark.asyncio
async def test_retry_after_is_replayed() -> None:
    case = CASE_BY_PATH[CASSETTES / "anthropic" / "error_429.yaml"]
    with (
        vcr.use_cassette(str(case.path), record_mode="none", match_on=MATCH_ON),
        pytest.raises(litellm.RateLimitError) as raised,
    ):
        await _replay(case)
    assert raised.value.litellm_response_headers["retry-after"] == "7"


@pytest.mark.parametrize("path", CASSETTE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_cassette_holds_no_secrets(path: Path) -> None:
    text, data = _load(path)
    assert "test-key" not in text
    for fake_key in ("sk-test-openai", "sk-ant-test", "test-google-key"):  # tests/conftest.py
        assert fake_key not in text
    assert text.startswith("# Recorded from LiteLLM's real requests")

    [interaction] = data["interactions"]
    request, response = interaction["request"], interaction["response"]
    assert "key=" not in request["uri"]
    for name, values in request["headers"].items():
        if name.lower() in SECRET_REQUEST_HEADERS:
            assert values == [FILTERED], name
    assert not {name.lower() for name in response["headers"]} & set(SECRET_RESPONSE_HEADERS)


def test_filters_scrub_a_live_style_request() -> None:
    # --live cannot run here; this is the part of it that decides what reaches the file.
    request = vcr.request.Request(
        "POST",
        "http://127.0.0.1:1234/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=AIza-secret",
        b"{}",
        {"x-goog-api-key": "AIza-secret", "Host": "127.0.0.1:1234", "Cookie": "session=secret"},
    )
    scrubbed = scrub_request(request)
    assert scrubbed.uri == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert scrubbed.headers["host"] == "generativelanguage.googleapis.com"
    assert scrubbed.headers["x-goog-api-key"] == FILTERED
    assert scrubbed.headers["cookie"] == FILTERED

    response = scrub_response(
        {
            "headers": {
                "Set-Cookie": ["__cf_bm=secret"],
                "openai-organization": ["org-x"],
                "a": ["b"],
            }
        }
    )
    assert response["headers"] == {"a": ["b"]}
