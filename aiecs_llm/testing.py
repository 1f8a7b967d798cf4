"""Offline tests for code that calls LLMs: replay recorded provider traffic with VCR.py.

Record once with real keys, replay in CI with none::

    from aiecs_llm.testing import use_cassette

    async def test_summary():
        with use_cassette("cassettes/summary.yaml"):          # replay only (the default)
            ...
    # record:  use_cassette("cassettes/summary.yaml", record_mode="once")

Keys never reach a cassette: the ``authorization``, ``x-api-key`` and ``x-goog-api-key`` request
headers, the ``key`` query parameter and cookies are scrubbed when a cassette is written.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    error naming the cassette. With ``allow_unplayed=False`` the block also fails if some
    recorded interaction was never requested.
    """
    import vcr

    cassette_path = Path(path)
    if record_mode == "none" and not cassette_path.exists():
        raise ConfigurationError(
            f"no cassette at {cassette_path}: record it once with real keys "
            f"(use_cassette(..., record_mode='once')) and commit it"
        )
    recorder = vcr.VCR(
        record_mode=record_mode,
        match_on=list(match_on),
        filter_headers=[(name, "FILTERED") for name in SECRET_REQUEST_HEADERS],
        filter_query_parameters=[(name, "FILTERED") for name in SECRET_QUERY_PARAMETERS],
        before_record_response=_scrub_response,
        decode_compressed_response=False,
    )
    with recorder.use_cassette(str(cassette_path)) as cassette:
        yield cassette
    if not allow_unplayed and not cassette.all_played:
        unplayed = len(cassette.data) - cassette.play_count
        raise AssertionError(f"{unplayed} recorded interaction(s) in {cassette_path} never played")
