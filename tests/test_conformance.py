"""Conformance: real provider HTTP recordings replayed through the public API.

The recordings live outside the repository, in ``../shared/conformance`` (``CONFORMANCE`` in
``conftest.py``); ``SOURCES.tsv`` there says, per recording, what a client must read from it.
Each row becomes one test: the target interaction is normalised into a temporary vcrpy cassette
(see ``conformance_cassettes.py``) and replayed with ``record_mode="none"`` while the library
makes one real call (``max_retries=0``, so one recorded interaction is one call).

A second test replays the multi-interaction recordings (429 -> 200, 503 -> 200) in order with
retries on and checks the final success, for recordings whose waits fit a small time budget.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import vcr

import aiecs_llm
from aiecs_llm import (
    AnthropicClient,
    GoogleAIClient,
    LiteLLMClient,
    LLMMessage,
    LLMResponse,
    OpenAIClient,
)
from tests.conformance_cassettes import (
    Row,
    header,
    load_rows,
    normalize,
    read_recording,
    response_text,
    write_cassette,
)
from tests.conftest import CONFORMANCE

API_KEY = "test-key"
MAX_TOKENS = 100
MESSAGES = [LLMMessage("user", "hello")]

PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
ANTHROPIC_HOST = "api.anthropic.com"
# Query parameters that differ between the recording client and LiteLLM without changing the
# endpoint: Anthropic's SDK adds ``?beta=true``; Gemini keys may travel as ``?key=``.
IGNORED_QUERY_PARAMETERS = frozenset({"beta", "key"})
# LiteLLM sends Gemini 3+ model names (including the misspelt "gemini-3.6-flahs") to /v1alpha,
# while the recording client used /v1beta; the API version does not change the answer.
GEMINI_HOST = "generativelanguage.googleapis.com"
GEMINI_API_VERSION = re.compile(r"^/v1(?:alpha|beta)/")
# Normalised finish reasons (LLMResponse.finish_reason is LiteLLM's normalised value).
FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "STOP": "stop",
    "length": "length",
    "max_tokens": "length",
    "MAX_TOKENS": "length",
}
# The retry test sleeps for real (retry-after is honoured up to 60 s): only recordings whose
# waits stay within this budget are replayed that way.
RETRY_WAIT_BUDGET = 10.0
# Worst case of the retry layer's backoff when the server gives no retry-after:
# wait_exponential_jitter(initial=0.5) -> 0.5 * 2**(n-1) + up to 1 s of jitter.
BACKOFF_WORST_CASE = (1.5, 2.0, 3.0)


def _rows() -> list[Row]:
    if not (CONFORMANCE / "SOURCES.tsv").is_file():
        return []
    return load_rows(CONFORMANCE)


ROWS = _rows()
MISSING = pytest.param(None, id="conformance-recordings-missing")


def _skip_if_missing(row: Row | None) -> Row:
    if row is None:
        pytest.skip(
            f"conformance recordings not found at {CONFORMANCE} "
            "(expected ../shared/conformance next to the repository, with SOURCES.tsv)"
        )
    return row


# -- replay machinery ---------------------------------------------------------------------------


def _same_path(r1: Any, r2: Any) -> None:
    p1, p2 = r1.path or "/", r2.path or "/"
    if r1.host == GEMINI_HOST and r2.host == GEMINI_HOST:
        p1, p2 = GEMINI_API_VERSION.sub("/v1*/", p1), GEMINI_API_VERSION.sub("/v1*/", p2)
    if p1 != p2:
        raise AssertionError(f"path {r1.path} != {r2.path}")


def _query_without_noise(r1: Any, r2: Any) -> None:
    q1 = [(k, v) for k, v in r1.query if k not in IGNORED_QUERY_PARAMETERS]
    q2 = [(k, v) for k, v in r2.query if k not in IGNORED_QUERY_PARAMETERS]
    if q1 != q2:
        raise AssertionError(f"query {q1} != {q2}")


def _json_body(body: Any) -> Any:
    if body in (None, b"", ""):
        return None
    try:
        return json.loads(body)
    except (TypeError, ValueError):
        return None


def _same_model_and_stream(r1: Any, r2: Any) -> None:
    """The sent body names the recorded model and asks for streaming iff the recording did.

    Gemini bodies carry neither (the model is in the path), so they match trivially.
    """
    sent, recorded = _json_body(r1.body), _json_body(r2.body)
    if not isinstance(recorded, dict):
        return
    if not isinstance(sent, dict):
        raise AssertionError("the request body is not a JSON object")
    if "model" in recorded and sent.get("model") != recorded["model"]:
        raise AssertionError(f"model {sent.get('model')!r} != {recorded['model']!r}")
    if bool(sent.get("stream")) != bool(recorded.get("stream")):
        raise AssertionError(f"stream {sent.get('stream')!r} != {recorded.get('stream')!r}")


def _recorder() -> vcr.VCR:
    recorder = vcr.VCR(
        record_mode="none",
        match_on=[
            "method",
            "scheme",
            "host",
            "port",
            "same_path",
            "query_sans_noise",
            "model_stream",
        ],
        decode_compressed_response=False,
    )
    recorder.register_matcher("same_path", _same_path)
    recorder.register_matcher("query_sans_noise", _query_without_noise)
    recorder.register_matcher("model_stream", _same_model_and_stream)
    return recorder


def _interactions(row: Row) -> list[dict[str, Any]]:
    return [normalize(raw) for raw in read_recording(CONFORMANCE / "cassettes" / row.file)]


def _cassette(tmp_path: Path, row: Row, interactions: list[dict[str, Any]]) -> Path:
    return write_cassette(interactions, tmp_path / row.file)


def _client(row: Row, uri: str, *, max_retries: int) -> LiteLLMClient:
    parts = urlsplit(uri)
    if row.provider == "openai":
        return OpenAIClient(api_key=API_KEY, max_retries=max_retries)
    if row.provider == "anthropic":
        base_url = None
        if parts.hostname != ANTHROPIC_HOST:
            # Recorded through a proxy (the Pydantic AI Gateway): point the client at it.
            prefix = parts.path.rsplit("/v1/messages", 1)[0]
            base_url = f"{parts.scheme}://{parts.netloc}{prefix}"
        return AnthropicClient(api_key=API_KEY, base_url=base_url, max_retries=max_retries)
    if row.provider == "gemini":
        return GoogleAIClient(api_key=API_KEY, max_retries=max_retries)
    raise AssertionError(f"unknown provider {row.provider!r}")


# OpenAI reasoning models take only temperature=1 (LiteLLM refuses anything else before sending).
# The library should leave its default temperature out for them but does not (see
# test_reasoning_model_without_temperature), so these rows pass temperature=1 explicitly.
REASONING_TEMPERATURE = {
    "openai__success__pydantic-ai-o3-mini-reasoning.yaml": 1.0,
    "openai__error__pydantic-ai-404-model-not-found.yaml": 1.0,  # gpt-5.2-proo: a gpt-5 name
}


async def _call(
    client: LiteLLMClient, row: Row, *, temperature: float | None = None
) -> tuple[LLMResponse, str | None]:
    """One call through the public API; for streams also the concatenated chunks."""
    options: dict[str, Any] = {"model": row.request_model, "max_tokens": MAX_TOKENS}
    if temperature is not None:
        options["temperature"] = temperature
    if row.stream:
        stream = client.stream_text(MESSAGES, **options)
        text = "".join([chunk async for chunk in stream])
        return stream.response, text
    return await client.generate_text(MESSAGES, **options), None


# -- expectations -------------------------------------------------------------------------------


def _expected_error(row: Row, target: dict[str, Any]) -> type[aiecs_llm.LLMClientError]:
    status = row.expected_status
    body = response_text(target)
    if status in (401, 403):
        return aiecs_llm.AuthenticationError
    if status == 400 and row.provider == "gemini" and "API_KEY_INVALID" in body:
        return aiecs_llm.AuthenticationError
    if status == 404:
        return aiecs_llm.ModelNotFoundError
    if status == 429:
        return aiecs_llm.RateLimitError
    if status == 400 and ("context_length_exceeded" in body or "prompt is too long" in body):
        return aiecs_llm.ContextWindowExceededError
    if status in (400, 422):
        return aiecs_llm.InvalidRequestError
    if status >= 500:
        return aiecs_llm.ProviderNotAvailableError
    raise AssertionError(f"no expected error class for status {status}")


def _recorded_retry_after(target: dict[str, Any]) -> float | None:
    value = header(target["response"]["headers"], "retry-after")
    return float(value) if value is not None else None


def _recorded_error_code(row: Row, target: dict[str, Any]) -> str | None:
    """The provider's own error code, as ``LLMClientError.code`` documents it: OpenAI's
    ``error.code`` (else ``error.type``), Anthropic's ``error.type``, Gemini's ``error.status``;
    None for a body that is not a JSON error (the text/plain 503).
    """
    try:
        body = json.loads(response_text(target))
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    if row.provider == "gemini":
        code = error.get("status")
    elif row.provider == "openai" and isinstance(error.get("code"), str) and error["code"]:
        code = error["code"]
    else:
        code = error.get("type")
    return code if isinstance(code, str) and code else None


def _expect(row: Row, check: str, ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(f"{row.file}: {check}: {message}")


def _params() -> list[Any]:
    if not ROWS:
        return [MISSING]
    return [pytest.param(row, id=row.file) for row in ROWS]


@pytest.fixture
def replay(tmp_path: Path) -> Any:
    """``replay(row, interactions)``: a context manager replaying exactly those interactions."""
    recorder = _recorder()

    def open_cassette(row: Row, interactions: list[dict[str, Any]]) -> Any:
        return recorder.use_cassette(str(_cassette(tmp_path, row, interactions)))

    return open_cassette


# -- one test per SOURCES.tsv row ---------------------------------------------------------------


@pytest.mark.parametrize("row", _params())
async def test_recording(row: Row | None, replay: Any) -> None:
    row = _skip_if_missing(row)
    interactions = _interactions(row)
    target = interactions[row.target_interaction]
    assert target["response"]["status"]["code"] == row.expected_status, "SOURCES.tsv mismatch"

    check = _check_error if row.is_error else _check_success
    client = _client(row, target["request"]["uri"], max_retries=0)
    try:
        with replay(row, [target]) as cassette:
            await check(client, row, target, temperature=REASONING_TEMPERATURE.get(row.file))
            assert cassette.play_count == 1, "exactly one HTTP request per call"
    finally:
        await client.close()


async def _check_success(
    client: LiteLLMClient, row: Row, target: dict[str, Any], *, temperature: float | None = None
) -> None:
    del target  # the same signature as _check_error
    response, streamed = await _call(client, row, temperature=temperature)

    if streamed is not None:
        assert streamed == response.content, "stream.response.content != the chunks joined"
        if streamed:
            assert response.time_to_first_chunk is not None
    assert response.content.startswith(row.expected_content_prefix), response.content
    assert response.model == row.expected_model
    assert response.provider == PROVIDER_NAMES[row.provider]
    assert response.prompt_tokens == row.expected_prompt_tokens
    assert response.completion_tokens == row.expected_output_tokens_incl_reasoning
    if row.expected_reasoning_tokens is not None:
        assert response.reasoning_tokens == row.expected_reasoning_tokens
    assert response.prompt_tokens is not None
    assert response.completion_tokens is not None
    assert response.tokens_used == response.prompt_tokens + response.completion_tokens
    assert response.finish_reason == FINISH_REASONS[row.expected_finish_reason]


async def _check_error(
    client: LiteLLMClient, row: Row, target: dict[str, Any], *, temperature: float | None = None
) -> None:
    expected = _expected_error(row, target)
    with pytest.raises(aiecs_llm.LLMClientError) as caught:
        await _call(client, row, temperature=temperature)
    error = caught.value

    assert type(error) is expected, f"{type(error).__name__} != {expected.__name__}: {error!r}"
    assert error.status_code == row.expected_status
    assert error.provider == PROVIDER_NAMES[row.provider]
    assert error.model == row.request_model
    if row.expected_status == 429:
        assert error.retry_after == _recorded_retry_after(target)
    # The provider's own explanation is the message.
    assert error.message.startswith(row.expected_content_prefix), error.message
    # Last, so that a known defect here cannot hide a failure above.
    expected_code = _recorded_error_code(row, target)
    if row.expected_error_type and row.provider != "openai":
        assert expected_code == row.expected_error_type, "SOURCES.tsv mismatch"
    _expect(row, "code", error.code == expected_code, f"code {error.code!r} != {expected_code!r}")


def _reasoning_rows() -> list[Any]:
    if not ROWS:
        return [MISSING]
    return [pytest.param(row, id=row.file) for row in ROWS if row.file in REASONING_TEMPERATURE]


@pytest.mark.parametrize("row", _reasoning_rows())
async def test_reasoning_model_without_temperature(row: Row | None, replay: Any) -> None:
    """The documented default: with no temperature argument a reasoning model works too."""
    row = _skip_if_missing(row)
    target = _interactions(row)[row.target_interaction]
    client = _client(row, target["request"]["uri"], max_retries=0)
    try:
        with replay(row, [target]) as cassette:
            response: LLMResponse | None = None
            failure: aiecs_llm.LLMClientError | None = None
            try:
                response, _ = await _call(client, row)  # no temperature
            except aiecs_llm.LLMClientError as error:
                failure = error
            assert cassette.play_count == 1, f"refused before any HTTP: {failure!r}"
            if row.is_error:
                assert type(failure) is _expected_error(row, target), repr(failure)
            else:
                assert response is not None, repr(failure)
                assert response.content.startswith(row.expected_content_prefix)
                assert response.model == row.expected_model
            assert cassette.play_count == 1
    finally:
        await client.close()


# -- multi-interaction recordings, replayed in order with retries on ----------------------------


def _retry_rows() -> list[Any]:
    if not ROWS:
        return [MISSING]
    return [
        pytest.param(row, id=row.file)
        for row in ROWS
        if len(row.interaction_statuses) > 1 and row.interaction_statuses[-1] == 200
    ]


def _anthropic_answer(interaction: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(response_text(interaction))
    return {
        "content": "".join(b.get("text", "") for b in body["content"] if b["type"] == "text"),
        "model": body["model"],
        "prompt_tokens": body["usage"]["input_tokens"],
        "completion_tokens": body["usage"]["output_tokens"],
    }


@pytest.mark.parametrize("row", _retry_rows())
async def test_retries_reach_the_recorded_success(row: Row | None, replay: Any) -> None:
    row = _skip_if_missing(row)
    interactions = _interactions(row)
    # From the target error to the final success, skipping other endpoints (none here).
    sequence = [
        it
        for it in interactions[row.target_interaction :]
        if urlsplit(it["request"]["uri"]).path
        == urlsplit(interactions[row.target_interaction]["request"]["uri"]).path
    ]
    statuses = [it["response"]["status"]["code"] for it in sequence]
    assert statuses == list(row.interaction_statuses[-len(statuses) :]), statuses
    assert statuses[-1] == 200

    failures = sequence[:-1]
    asked = [_recorded_retry_after(it) for it in failures]
    worst_wait = sum(
        wait if wait is not None else BACKOFF_WORST_CASE[i] for i, wait in enumerate(asked)
    )
    if worst_wait > RETRY_WAIT_BUDGET:
        pytest.skip(
            f"replaying the retries would sleep up to {worst_wait:g}s "
            f"(retry-after {asked}); budget {RETRY_WAIT_BUDGET:g}s"
        )
    assert row.provider == "anthropic", "only Anthropic retry recordings are expected here"
    expected = _anthropic_answer(sequence[-1])

    client = _client(row, sequence[0]["request"]["uri"], max_retries=len(failures))
    started = time.monotonic()
    try:
        with replay(row, sequence) as cassette:
            response, _ = await _call(client, row)
            assert cassette.play_count == len(sequence)
            assert cassette.all_played
    finally:
        await client.close()
    elapsed = time.monotonic() - started

    # The server's retry-after was honoured, not shortened.
    assert elapsed >= sum(wait for wait in asked if wait is not None)
    assert response.content == expected["content"]
    assert response.model == expected["model"]
    assert response.prompt_tokens == expected["prompt_tokens"]
    assert response.completion_tokens == expected["completion_tokens"]
