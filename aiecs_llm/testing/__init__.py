"""Offline tests for code that calls LLMs: replay recorded provider traffic with VCR.py.

Record once with real keys, replay in CI with none::

    from aiecs_llm.testing import use_cassette

    async def test_summary():
        with use_cassette("cassettes/summary.yaml"):          # replay only (the default)
            ...
    # record:  use_cassette("cassettes/summary.yaml", record_mode="once")

Keys never reach a cassette: the ``authorization``, ``x-api-key`` and ``x-goog-api-key`` request
headers, the ``key`` query parameter and cookies are scrubbed when a cassette is written.

With pytest, the plugin in :mod:`aiecs_llm.testing.pytest_plugin` does this per test: the
``llm_cassette`` marker and fixture, and ``pytest --llm-record=new|all|none``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from aiecs_llm.errors import ConfigurationError

RecordMode = Literal["none", "once", "new_episodes", "all"]

SECRET_REQUEST_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie")
"""Request headers replaced by ``FILTERED`` when a cassette is written."""
SECRET_RESPONSE_HEADERS = (
    "set-cookie",
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
)
"""Response headers dropped when a cassette is written."""
SECRET_QUERY_PARAMETERS = ("key", "api_key")
"""Query parameters replaced by ``FILTERED`` (Gemini accepts its key as ``?key=``)."""
MATCH_ON = ("method", "scheme", "host", "port", "path", "query")
"""How a request finds its recording: everything but the body and headers."""
BODY_FIELDS = (
    "model",
    "messages",
    "system",
    "contents",
    "systemInstruction",
    "generationConfig",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "top_k",
    "stop",
    "stop_sequences",
    "seed",
    "n",
    "stream",
    "tools",
    "tool_choice",
    "response_format",
)
"""The JSON request-body fields the ``body_fields`` matcher compares: what decides the answer.
Anything else (``stream_options``, ``user``, ``metadata``, fields a LiteLLM upgrade adds) may
change without breaking a replay. Gemini's model is in the path, its settings in
``generationConfig``."""
LLM_MATCH_ON = (*MATCH_ON, "body_fields")
"""``MATCH_ON`` plus the request body's deciding fields: each distinct prompt finds its own
recording, in any order, so concurrent calls replay correctly."""


def body_fields(request: Any, recorded: Any) -> None:
    """The vcrpy matcher ``body_fields``: the :data:`BODY_FIELDS` of two JSON bodies are equal.

    Raises ``AssertionError`` naming each field that differs, which vcrpy shows in its
    "no match" message next to the closest recorded request.
    """
    asked, stored = _json_body(request), _json_body(recorded)
    if asked is None or stored is None:
        if request.body != recorded.body:
            raise AssertionError("the (non-JSON) bodies differ")
        return
    differing = [
        f"{name}: requested {_short(asked.get(name))}, recorded {_short(stored.get(name))}"
        for name in BODY_FIELDS
        if asked.get(name) != stored.get(name)
    ]
    if differing:
        raise AssertionError("; ".join(differing))


def _json_body(request: Any) -> Mapping[str, Any] | None:
    body = request.body
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False) if value is not None else "(absent)"
    return text if len(text) <= limit else f"{text[:limit]}..."


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in SECRET_RESPONSE_HEADERS:
            del headers[name]
    return response


@contextmanager
def use_cassette(
    path: str | Path,
    *,
    record_mode: RecordMode = "none",
    match_on: tuple[str, ...] = MATCH_ON,
    allow_unplayed: bool = True,
) -> Iterator[Any]:
    """Replay (or, with another ``record_mode``, record) the HTTP traffic inside the block.

    With ``record_mode="none"`` a missing cassette, or a request that is not in it, raises an
    error naming the cassette. ``record_mode="all"`` re-records the cassette from scratch.
    With ``allow_unplayed=False`` the block also fails if some recorded interaction was never
    requested. ``match_on=LLM_MATCH_ON`` also matches the prompt, model and sampling settings.
    """
    import vcr

    cassette_path = Path(path)
    if record_mode == "none" and not cassette_path.exists():
        raise ConfigurationError(
            f"no cassette at {cassette_path}: record it once with real keys "
            f"(pytest --llm-record=new, or use_cassette(..., record_mode='once')) and commit it"
        )
    recorder = vcr.VCR(
        record_mode=record_mode,
        match_on=list(match_on),
        filter_headers=[(name, "FILTERED") for name in SECRET_REQUEST_HEADERS],
        filter_query_parameters=[(name, "FILTERED") for name in SECRET_QUERY_PARAMETERS],
        before_record_response=_scrub_response,
        decode_compressed_response=False,
        # "all" means from scratch: interactions the code no longer makes are dropped.
        drop_unused_requests=record_mode == "all",
    )
    recorder.register_matcher("body_fields", body_fields)
    with recorder.use_cassette(str(cassette_path)) as cassette:
        yield cassette
    if not allow_unplayed and not cassette.all_played:
        unplayed = len(cassette.data) - cassette.play_count
        raise AssertionError(f"{unplayed} recorded interaction(s) in {cassette_path} never played")
