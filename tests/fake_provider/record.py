"""Record the project's cassettes in cassettes/<provider>/<case>.yaml.

    python -m tests.fake_provider.record                  # every case, against the fake server
    python -m tests.fake_provider.record --only 'openai/*'
    python -m tests.fake_provider.record --live           # real APIs, real keys (see below)

By default LiteLLM's real requests go to the local wire-format server (tests/fake_provider) and
each interaction's URI and `host` header are rewritten to the real endpoint, so the cassettes
replay while LiteLLM calls its default endpoints (no api_base).

`--live` sends the same requests to the real APIs with OPENAI_API_KEY / ANTHROPIC_API_KEY /
GEMINI_API_KEY. Only the cases a caller can provoke are recorded live (success, stream, bad key,
unknown model, demo); 429/5xx/529 and context-length cases keep their fake recordings. It sends
billable traffic and was never run here (this machine has no internet).

Either way keys never reach a file: the authorization / x-api-key / x-goog-api-key / cookie
request headers become FILTERED, a `key` query parameter is dropped, and set-cookie and
account-identifying response headers are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import os
import sys
import zlib
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiecs_llm.testing import (
    SECRET_QUERY_PARAMETERS,
    SECRET_REQUEST_HEADERS,
    SECRET_RESPONSE_HEADERS,
)

from .cases import CASES, CASSETTES, Case
from .server import FakeProviderServer
from .wire import Provider

FILTERED: Final = "FILTERED"  # the placeholder aiecs_llm.testing uses too
REAL_HOSTS: Final[dict[Provider, str]] = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gemini": "generativelanguage.googleapis.com",
}
KEY_VARIABLES: Final[dict[Provider, str]] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
FAKE_KEY: Final = "test-key"
INVALID_LIVE_KEY: Final = "invalid-key-for-recording"

# -- filters applied to every interaction before it is written ---------------------------------


def provider_for_path(path: str) -> Provider:
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    return "gemini"


def scrub_request(request: Any) -> Any:
    """vcrpy before_record_request: point the URI at the real API and drop credentials."""
    parts = urlsplit(request.uri)
    host = REAL_HOSTS[provider_for_path(parts.path)]
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in SECRET_QUERY_PARAMETERS]
    request.uri = urlunsplit(("https", host, parts.path, urlencode(query), ""))
    if "host" in request.headers:
        request.headers["host"] = host
    for name in SECRET_REQUEST_HEADERS:
        if name in request.headers:
            request.headers[name] = FILTERED
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """vcrpy before_record_response: drop cookies and account-identifying headers."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in SECRET_RESPONSE_HEADERS:
            del headers[name]
    return response


class _CommentedYaml:
    """vcrpy's YAML serializer with a provenance comment on top (YAML ignores it on load)."""

    def __init__(self, header: str) -> None:
        self.header = header

    def serialize(self, cassette_dict: dict[str, Any]) -> str:
        from vcr.serializers import yamlserializer

        body: str = yamlserializer.serialize(cassette_dict)
        return self.header + body

    def deserialize(self, cassette_string: str) -> dict[str, Any]:
        from vcr.serializers import yamlserializer

        cassette: dict[str, Any] = yamlserializer.deserialize(cassette_string)
        return cassette


def provenance(case: Case, live: bool) -> str:
    rerecord = f"python -m tests.fake_provider.record --only {case.id}"
    if live:
        return (
            f"# Recorded from LiteLLM's real requests against the real {case.provider} API.\n"
            f"# Re-record (real keys, billable): {rerecord} --live\n"
        )
    return (
        "# Recorded from LiteLLM's real requests against the local wire-format server\n"
        "# tests/fake_provider (format modelled on real provider recordings); the URI was\n"
        "# rewritten to the real endpoint and credentials were filtered.\n"
        f"# Re-record: {rerecord}\n"
    )


# -- recording -------------------------------------------------------------------------------


async def _call(case: Case, api_key: str, api_base: str | None) -> str:
    import litellm

    kwargs = case.completion_kwargs() | {"api_key": api_key}
    if api_base is not None:
        kwargs["api_base"] = api_base
    try:
        response = await litellm.acompletion(**kwargs)
        if case.stream:
            # Drain the stream: Gemini only sends the request on the first read.
            texts = [
                chunk.choices[0].delta.content or "" async for chunk in response if chunk.choices
            ]
            return "".join(texts)
        return str(response.choices[0].message.content)
    except Exception as error:  # the error *is* the recording for the error cases
        return f"{type(error).__name__} (status {getattr(error, 'status_code', '?')})"


async def record_case(case: Case, live: bool) -> str:
    import vcr

    case.path.parent.mkdir(parents=True, exist_ok=True)
    case.path.unlink(missing_ok=True)
    recorder = vcr.VCR(
        record_mode="all",
        before_record_request=scrub_request,
        before_record_response=scrub_response,
        # Live answers are gzip; store them readable (the header goes with the compression).
        decode_compressed_response=True,
    )
    recorder.register_serializer("commented_yaml", _CommentedYaml(provenance(case, live)))
    if live:
        key = INVALID_LIVE_KEY if case.bad_key else os.environ[KEY_VARIABLES[case.provider]]
        with recorder.use_cassette(str(case.path), serializer="commented_yaml") as cassette:
            outcome = await _call(case, key, None)
    else:
        server = FakeProviderServer(seed=zlib.crc32(case.id.encode()))
        async with server:
            server.enqueue(case.reply)
            base = {
                "openai": server.openai_base,
                "anthropic": server.anthropic_base,
                "gemini": server.gemini_base,
            }[case.provider]
            with recorder.use_cassette(str(case.path), serializer="commented_yaml") as cassette:
                outcome = await _call(case, FAKE_KEY, base)
    statuses = [response["status"]["code"] for response in cassette.responses]
    if statuses != [case.http_status]:
        raise RuntimeError(f"{case.id}: recorded statuses {statuses}, wanted [{case.http_status}]")
    return outcome


async def record(cases: list[Case], live: bool) -> None:
    import litellm

    litellm.suppress_debug_info = True
    for case in cases:
        if live and not case.live:
            print(f"skip   {case.id}: the real API cannot be made to answer this on demand")
            continue
        outcome = await record_case(case, live)
        print(f"wrote  {case.path.relative_to(CASSETTES.parent)}: {outcome}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--live", action="store_true", help="record against the real APIs")
    parser.add_argument("--only", default="*", help="glob over <provider>/<case>, e.g. 'gemini/*'")
    args = parser.parse_args(argv)

    cases = [case for case in CASES if fnmatch.fnmatch(case.id, args.only)]
    if not cases:
        parser.error(f"no case matches {args.only!r}")
    if args.live:
        missing = sorted({KEY_VARIABLES[c.provider] for c in cases if c.live} - set(os.environ))
        if missing:
            parser.error(f"--live needs {', '.join(missing)}")
    # LiteLLM reads this at import; without it the import would fetch the price map.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    asyncio.run(record(cases, args.live))
    return 0


if __name__ == "__main__":
    sys.exit(main())
