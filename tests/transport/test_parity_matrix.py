"""The two transports give the same answers and the same errors, against a hostile server.

Every case runs on one path per test id (``acompletion``: every call through
``litellm.acompletion``; ``fast``: the client's own fast transport where it handles the call)
and checks the correct behaviour there. On the fast path the case is then run once more through
``litellm.acompletion`` and the two normalised outcomes must be identical: for an answer every
``LLMResponse`` field but the timings, plus the chunks of a stream; for an error its class,
status, code, message, retry-after, partial text and whether ``__cause__`` is set; in every case
the number of requests the server received (and, where it matters, what they carried).

Each case runs with and without extra keywords (``seed``, ``top_p``, ``stop``): any keyword the
fast path did not map used to send the call through ``acompletion`` instead.

The harness (``make_client`` there is the one place that chooses a path) is
``tests/transport/parity.py``; the server is ``tests/transport/hostile_server.py``.
``pytest tests/transport/test_parity_matrix.py -k acompletion`` checks the expected values
against LiteLLM's path alone.

Where LiteLLM's own path is wrong, the tests assert the correct behaviour for both paths (so
those cases fail on the ``acompletion`` ids too, until our layer corrects LiteLLM):

- o3 / o4-mini: LiteLLM turns a system message into a user message (its bundled model map
  lacks ``supports_system_messages`` for them); the instruction must stay an instruction.
- An OpenAI stream that ends with ``[DONE]`` but never named a finish reason: LiteLLM raises
  "Stream ended before a finish_reason was received" after yielding all the text; it is a whole
  answer (``finish_reason`` "stop", as LiteLLM reads the same answer unstreamed).
- Anthropic: an ``event: error`` in a stream, and a whole-answer 500, come back with code
  ``internal_server_error`` (the 500 with the raw JSON and "Handle with
  `litellm.InternalServerError`" as its message); the provider's own type and message are what
  ``code`` and ``message`` promise.
- OpenAI over TLS with an unknown certificate: LiteLLM says only "Connection error."; the
  error must say that the certificate was refused.
- Deadlines: ``timeout`` is per read on LiteLLM's path (a drip-fed answer runs past it), a
  Gemini call there ignores the call's ``timeout`` (the client's is used), and no path ends a
  stream kept alive without text by its deadline.
- The numbers in error messages are masked before the paths are compared (a timeout's message
  carries the seconds measured), but the words must be the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import pytest

from aiecs_llm import LLMMessage
from tests.transport import wire
from tests.transport.certificates import Certificate, make_certificate
from tests.transport.hostile_server import HostileServer, Script, Step
from tests.transport.parity import (
    Case,
    Outcome,
    assert_answer,
    assert_error,
    extra_for,
    extras_param,
    outcome,
    path_param,
    response_fields,
    run,
)

pytestmark = pytest.mark.parity

STALL: Final = 60.0  # a server that stalls this long has stopped answering (> CALL_TIMEOUT)
DEADLINE_BOUND: Final = 20.0  # a 1 s deadline against a long stall ends well before this
DRIP_SECONDS: Final = 15.0  # a drip-fed answer keeps the line busy this long, then stalls
DRIP_BOUND: Final = 10.0  # a 1 s deadline against that drip ends well before this
KEEP_ALIVE_IDLE: Final = 12.0  # > DRIP_BOUND: only the deadline can end a kept-alive stream in time


@pytest.fixture(scope="module", autouse=True)
def _litellm_loaded() -> None:
    """LiteLLM takes seconds to import: done before any call, so that no call's deadline pays
    for it.
    """
    import litellm

    del litellm


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as running:
        yield running


ALL: Final = ("openai", "anthropic", "gemini")
OPENAI_ANTHROPIC: Final = ("openai", "anthropic")


# == a well-formed answer, as a baseline ======================================================


def _whole(provider: str, **options: Any) -> Script:
    if provider == "openai":
        return Script.json(wire.openai_completion(**options))
    if provider == "anthropic":
        return Script.json(wire.anthropic_message(**options))
    return Script.json(wire.gemini_answer(**options))


def _stream(provider: str, **options: Any) -> Script:
    build = {
        "openai": wire.openai_stream,
        "anthropic": wire.anthropic_stream,
        "gemini": wire.gemini_stream,
    }[provider]
    return Script.sse(build(**options))


@path_param
@extras_param(ALL)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_well_formed_answer(
    path: str, provider: str, with_extra: bool, stream: bool, server: HostileServer
) -> None:
    script = _stream(provider) if stream else _whole(provider)
    case = Case(provider, [script], stream=stream, extra=extra_for(provider, with_extra))
    got = await outcome(path, server, case)
    assert_answer(got, response_fields(provider))
    if stream:
        assert got.result["chunks"] == ["Hel", "lo"]
    assert got.result["requests"] == 1


# == system messages on reasoning models ======================================================


@path_param
@pytest.mark.parametrize("model", ["o3", "o4-mini"])
@pytest.mark.parametrize("with_extra", [False, True], ids=["plain", "extra"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_reasoning_model_system_message(
    path: str, model: str, with_extra: bool, stream: bool, server: HostileServer
) -> None:
    served = {"o3": "o3-2025-04-16", "o4-mini": "o4-mini-2025-04-16"}[model]
    script = (
        Script.sse(wire.openai_stream())
        if stream
        else Script.json(wire.openai_completion(model=served))
    )
    case = Case(
        "openai",
        [script],
        stream=stream,
        extra=extra_for("o-series", with_extra),
        messages=(
            LLMMessage(role="system", content="Answer in one word."),
            LLMMessage(role="user", content="Say hello"),
        ),
        client_options={"model": model},
        call_options={"max_tokens": 50},
    )
    got = await outcome(path, server, case, same_bodies=True)
    assert "response" in got.result, got.result
    body = got.received[0].json
    # The instruction reaches the model as an instruction (o3 and o4-mini take system and
    # developer messages alike), not as something the user said.
    instruction = body["messages"][0]
    assert instruction["content"] == "Answer in one word."
    assert instruction["role"] in ("system", "developer"), instruction
    assert body["messages"][1] == {"role": "user", "content": "Say hello"}
    assert body.get("max_completion_tokens") == 50
    assert "max_tokens" not in body
    assert "temperature" not in body


# == finish_reason: null ======================================================================


def _no_finish_whole(provider: str) -> Script:
    if provider == "openai":
        return Script.json(wire.openai_completion(finish_reason=None))
    if provider == "anthropic":
        return Script.json(wire.anthropic_message(stop_reason=None))
    return Script.json(wire.gemini_answer(finish_reason=None))


def _no_finish_stream(provider: str) -> Script:
    if provider == "openai":
        return Script.sse(wire.openai_stream(finish_reason=None))
    if provider == "anthropic":
        return Script.sse(wire.anthropic_stream(stop_reason=None))
    return Script.sse(wire.gemini_stream(finish_reason=None))


@path_param
@extras_param(ALL)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_null_finish_reason(
    path: str, provider: str, with_extra: bool, stream: bool, server: HostileServer
) -> None:
    script = _no_finish_stream(provider) if stream else _no_finish_whole(provider)
    case = Case(provider, [script], stream=stream, extra=extra_for(provider, with_extra))
    got = await outcome(path, server, case)
    # An answer that arrived whole (a stream: up to [DONE] or message_stop) without a reason
    # ended normally: "stop", as LiteLLM normalises a whole answer.
    assert_answer(got, response_fields(provider, finish_reason="stop"))


# == a 200 whose body is an error (OpenAI) ====================================================

SERVER_ERROR_MESSAGE: Final = "The server had an error while processing your request."


@path_param
@pytest.mark.parametrize("with_extra", [False, True], ids=["plain", "extra"])
async def test_ok_status_with_error_body(
    path: str, with_extra: bool, server: HostileServer
) -> None:
    body = wire.openai_error(SERVER_ERROR_MESSAGE, kind="server_error")
    case = Case(
        "openai",
        [Script.json(body), Script.json(body)],
        extra=extra_for("openai", with_extra),
        client_options={"max_retries": 1},
    )
    got = await outcome(path, server, case)
    # The provider's error, said with a 200: its message, and retried like any server error.
    assert_error(got, "ProviderNotAvailableError", message=SERVER_ERROR_MESSAGE, requests=2)


# == an error event in the middle of a stream =================================================

OVERLOADED_MESSAGE: Final = "Overloaded"


def _error_event(provider: str) -> bytes:
    if provider == "openai":
        return wire.sse_event(wire.openai_error(SERVER_ERROR_MESSAGE, kind="server_error"))
    return wire.sse_event(
        wire.anthropic_error(OVERLOADED_MESSAGE, kind="overloaded_error"), event="error"
    )


def _stream_head(provider: str) -> list[bytes]:
    if provider == "openai":
        return wire.openai_stream()[:1]  # the role chunk: no text yet
    return wire.anthropic_stream_head()


def _first_text(provider: str) -> bytes:
    if provider == "openai":
        return wire.sse_event(wire.openai_chunk("Hel"))
    return wire.anthropic_text("Hel")


def _provider_message(provider: str) -> str:
    return SERVER_ERROR_MESSAGE if provider == "openai" else OVERLOADED_MESSAGE


@path_param
@extras_param(OPENAI_ANTHROPIC)
async def test_error_event_before_any_text(
    path: str, provider: str, with_extra: bool, server: HostileServer
) -> None:
    frames = [*_stream_head(provider), _error_event(provider)]
    case = Case(provider, [Script.sse(frames)], stream=True, extra=extra_for(provider, with_extra))
    got = await outcome(path, server, case)
    # The provider's own message and code, not a repr of the event.
    assert_error(got, "ProviderNotAvailableError", chunks=[], requests=1)
    assert got.result["message"] == _provider_message(provider)
    assert got.result["code"] == ("server_error" if provider == "openai" else "overloaded_error")


@path_param
@extras_param(OPENAI_ANTHROPIC)
async def test_error_event_after_text(
    path: str, provider: str, with_extra: bool, server: HostileServer
) -> None:
    frames = [*_stream_head(provider), _first_text(provider), _error_event(provider)]
    case = Case(provider, [Script.sse(frames)], stream=True, extra=extra_for(provider, with_extra))
    got = await outcome(path, server, case)
    assert_error(got, "StreamInterruptedError", partial_text="Hel", chunks=["Hel"], requests=1)
    assert got.result["message"].endswith(_provider_message(provider))
    assert "{" not in got.result["message"]  # no dict repr of the event


# == legal SSE framings =======================================================================

FRAMINGS: Final = {
    "lf": {"eol": "\n"},
    "crlf": {"eol": "\r\n"},
    "cr": {"eol": "\r"},
    "multiline-data": {"eol": "\n", "split": True},
}


@path_param
@extras_param(ALL)
@pytest.mark.parametrize("framing", list(FRAMINGS))
async def test_sse_framing(
    path: str, provider: str, with_extra: bool, framing: str, server: HostileServer
) -> None:
    script = _stream(provider, **FRAMINGS[framing])
    case = Case(provider, [script], stream=True, extra=extra_for(provider, with_extra))
    got = await outcome(path, server, case)
    assert_answer(got, response_fields(provider))
    assert got.result["chunks"] == ["Hel", "lo"]


# == deadlines ================================================================================


def _assert_deadline_kept(got: Outcome) -> None:
    # Loose on purpose: proves the deadline was enforced, not how fast.
    assert got.elapsed < DEADLINE_BOUND, f"the deadline took {got.elapsed:.1f}s"


@path_param
@extras_param(ALL)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_timeout_before_first_byte(
    path: str, provider: str, with_extra: bool, stream: bool, server: HostileServer
) -> None:
    script = _stream(provider) if stream else _whole(provider)
    stalled = Script(
        status=script.status,
        headers=script.headers,
        body=script.body,
        steps=script.steps,
        delay=STALL,
    )
    case = Case(
        provider,
        [stalled],
        stream=stream,
        extra=extra_for(provider, with_extra),
        call_options={"timeout": 1},
    )
    got = await outcome(path, server, case)
    assert_error(got, "RequestTimeoutError", requests=1)
    _assert_deadline_kept(got)


def _split_whole(provider: str) -> Script:
    """A whole answer whose body stops half-way (chunked encoding) and then stalls."""
    whole = _whole(provider)
    half = len(whole.body) // 2
    return Script(
        headers=whole.headers,
        steps=(Step(0.0, whole.body[:half]), Step(STALL), Step(0.0, whole.body[half:])),
    )


@path_param
@extras_param(ALL)
async def test_timeout_mid_body(
    path: str, provider: str, with_extra: bool, server: HostileServer
) -> None:
    case = Case(
        provider,
        [_split_whole(provider)],
        extra=extra_for(provider, with_extra),
        call_options={"timeout": 1},
    )
    got = await outcome(path, server, case)
    assert_error(got, "RequestTimeoutError", requests=1)
    _assert_deadline_kept(got)


def _stalled_stream(provider: str, *, after_text: bool) -> Script:
    frames = _stream(provider).steps
    assert frames is not None
    # OpenAI: role chunk, "Hel"; Anthropic: start, block start, "Hel"; Gemini: "Hel".
    first_text = {"openai": 2, "anthropic": 3, "gemini": 1}[provider]
    cut = first_text if after_text else first_text - 1
    return Script(
        headers={"Content-Type": "text/event-stream"},
        steps=(*frames[:cut], Step(STALL), *frames[cut:]),
    )


@path_param
@extras_param(ALL)
async def test_stream_stalls_after_first_chunk(
    path: str, provider: str, with_extra: bool, server: HostileServer
) -> None:
    case = Case(
        provider,
        [_stalled_stream(provider, after_text=True)],
        stream=True,
        extra=extra_for(provider, with_extra),
        idle_timeout=2.0,
    )
    got = await outcome(path, server, case)
    assert_error(got, "StreamInterruptedError", partial_text="Hel", chunks=["Hel"], requests=1)
    _assert_deadline_kept(got)


@path_param
@extras_param(ALL)
async def test_stream_stalls_before_any_text(
    path: str, provider: str, with_extra: bool, server: HostileServer
) -> None:
    case = Case(
        provider,
        [_stalled_stream(provider, after_text=False)],
        stream=True,
        extra=extra_for(provider, with_extra),
        idle_timeout=2.0,
    )
    got = await outcome(path, server, case)
    assert_error(got, "RequestTimeoutError", chunks=[], requests=1)
    _assert_deadline_kept(got)


def _drip(data: bytes, *, seconds: float) -> tuple[Step, ...]:
    """``data`` a few bytes at a time, spread over ``seconds``."""
    pieces = [data[index : index + 4] for index in range(0, len(data), 4)]
    return tuple(Step(seconds / len(pieces), piece) for piece in pieces)


@path_param
@extras_param(ALL)
async def test_deadline_of_a_drip_fed_answer(
    path: str, provider: str, with_extra: bool, server: HostileServer
) -> None:
    """The server keeps sending (so no read ever waits long), but the answer never ends in
    time: ``timeout`` is the whole call's, not each read's.
    """
    whole = _whole(provider)
    half = len(whole.body) // 2
    steps = (*_drip(whole.body[:half], seconds=DRIP_SECONDS), Step(STALL, whole.body[half:]))
    case = Case(
        provider,
        [Script(headers=whole.headers, steps=steps)],
        extra=extra_for(provider, with_extra),
        call_options={"timeout": 1},
    )
    got = await outcome(path, server, case)
    assert_error(got, "RequestTimeoutError", requests=1)
    assert got.elapsed < DRIP_BOUND, f"the deadline took {got.elapsed:.1f}s"


def _keep_alive(provider: str) -> bytes:
    """What a provider sends to keep a quiet stream open: no text."""
    if provider == "openai":
        chunk = wire.openai_chunk()
        chunk["choices"][0]["delta"] = {"content": ""}
        return wire.sse_event(chunk)
    if provider == "anthropic":
        return wire.sse_event({"type": "ping"}, event="ping")
    return b": keep-alive\r\n\r\n"


@path_param
@extras_param(ALL)
async def test_deadline_of_a_stream_kept_alive_without_text(
    path: str, provider: str, with_extra: bool, server: HostileServer
) -> None:
    """Empty deltas, pings or comments keep the stream from going idle, but no text comes
    in time: ``timeout`` still ends the call.
    """
    beats = int(DRIP_SECONDS / 0.25)
    steps = (
        *(Step(0.0, frame) for frame in _stream_head_any(provider)),
        *(Step(0.25, _keep_alive(provider)) for _ in range(beats)),
        Step(STALL),
    )
    case = Case(
        provider,
        [Script(headers={"Content-Type": "text/event-stream"}, steps=steps)],
        stream=True,
        extra=extra_for(provider, with_extra),
        call_options={"timeout": 1},
        idle_timeout=KEEP_ALIVE_IDLE,
    )
    got = await outcome(path, server, case)
    assert_error(got, "RequestTimeoutError", chunks=[], requests=1)
    assert got.elapsed < DRIP_BOUND, f"the deadline took {got.elapsed:.1f}s"


def _stream_head_any(provider: str) -> list[bytes]:
    return [] if provider == "gemini" else _stream_head(provider)


# == HTTP errors with Retry-After =============================================================

CONTEXT_MESSAGES: Final = {
    "openai": "This model's maximum context length is 128000 tokens. However, your messages "
    "resulted in 130000 tokens. Please reduce the length of the messages.",
    "anthropic": "prompt is too long: 210000 tokens > 200000 maximum",
    "gemini": "The input token count (1200000) exceeds the maximum number of tokens allowed "
    "(1048576).",
}


@dataclass(frozen=True)
class HttpError:
    status: int
    body: dict[str, Any]
    error: str
    code: str | None
    message: str
    retry_after: float


def _http_errors(provider: str) -> dict[str, HttpError]:
    if provider == "openai":
        return {
            "429": HttpError(
                429,
                wire.openai_error(
                    "Rate limit reached for gpt-4o-mini in organization org-test on requests "
                    "per min (RPM): Limit 3, Used 3, Requested 1.",
                    kind="requests",
                    code="rate_limit_exceeded",
                ),
                "RateLimitError",
                "rate_limit_exceeded",
                "Rate limit reached for gpt-4o-mini in organization org-test on requests "
                "per min (RPM): Limit 3, Used 3, Requested 1.",
                7.0,
            ),
            "500": HttpError(
                500,
                wire.openai_error(SERVER_ERROR_MESSAGE, kind="server_error"),
                "ProviderNotAvailableError",
                "server_error",
                SERVER_ERROR_MESSAGE,
                3.0,
            ),
            "400-context": HttpError(
                400,
                wire.openai_error(
                    CONTEXT_MESSAGES["openai"],
                    kind="invalid_request_error",
                    code="context_length_exceeded",
                    param="messages",
                ),
                "ContextWindowExceededError",
                "context_length_exceeded",
                CONTEXT_MESSAGES["openai"],
                5.0,
            ),
        }
    if provider == "anthropic":
        return {
            "429": HttpError(
                429,
                wire.anthropic_error(
                    "Number of request tokens has exceeded your per-minute rate limit",
                    kind="rate_limit_error",
                ),
                "RateLimitError",
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
                7.0,
            ),
            "529": HttpError(
                529,
                wire.anthropic_error(OVERLOADED_MESSAGE, kind="overloaded_error"),
                "ProviderNotAvailableError",
                "overloaded_error",
                OVERLOADED_MESSAGE,
                3.0,
            ),
            "500": HttpError(
                500,
                wire.anthropic_error("Internal server error", kind="api_error"),
                "ProviderNotAvailableError",
                "api_error",
                "Internal server error",
                3.0,
            ),
            "400-context": HttpError(
                400,
                wire.anthropic_error(CONTEXT_MESSAGES["anthropic"], kind="invalid_request_error"),
                "ContextWindowExceededError",
                "invalid_request_error",
                CONTEXT_MESSAGES["anthropic"],
                5.0,
            ),
        }
    return {
        "429": HttpError(
            429,
            wire.gemini_error(
                "Resource has been exhausted (e.g. check quota).",
                code=429,
                status="RESOURCE_EXHAUSTED",
            ),
            "RateLimitError",
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            7.0,
        ),
        "500": HttpError(
            500,
            wire.gemini_error("An internal error has occurred.", code=500, status="INTERNAL"),
            "ProviderNotAvailableError",
            "INTERNAL",
            "An internal error has occurred.",
            3.0,
        ),
        "400-context": HttpError(
            400,
            wire.gemini_error(CONTEXT_MESSAGES["gemini"], code=400, status="INVALID_ARGUMENT"),
            "ContextWindowExceededError",
            "INVALID_ARGUMENT",
            CONTEXT_MESSAGES["gemini"],
            5.0,
        ),
    }


ERROR_CASES: Final = [
    pytest.param(provider, name, extra, id=f"{provider}-{name}-{'extra' if extra else 'plain'}")
    for provider in ALL
    for name in _http_errors(provider)
    for extra in (False, True)
]


@path_param
@pytest.mark.parametrize(("provider", "name", "with_extra"), ERROR_CASES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_http_error_with_retry_after(
    path: str, provider: str, name: str, with_extra: bool, stream: bool, server: HostileServer
) -> None:
    spec = _http_errors(provider)[name]
    headers = {"Retry-After": f"{spec.retry_after:g}"}
    case = Case(
        provider,
        [Script.json(spec.body, status=spec.status, headers=headers)],
        stream=stream,
        extra=extra_for(provider, with_extra),
    )
    got = await outcome(path, server, case)
    assert_error(
        got,
        spec.error,
        status_code=spec.status,
        code=spec.code,
        message=spec.message,
        retry_after=spec.retry_after,
        requests=1,
    )


# == TLS ======================================================================================


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def tls_server(certificate: Certificate) -> AsyncIterator[HostileServer]:
    async with HostileServer(ssl_context=certificate.server_context()) as running:
        yield running


@pytest.fixture
def litellm_module() -> Any:
    import litellm

    return litellm


TRUST: Final = ("ssl_verify_false", "ssl_verify_ca_path", "ssl_cert_file")


@path_param
@extras_param(ALL)
@pytest.mark.parametrize("trust", TRUST)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_tls_settings_apply(
    path: str,
    provider: str,
    with_extra: bool,
    trust: str,
    stream: bool,
    tls_server: HostileServer,
    certificate: Certificate,
    litellm_module: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if trust == "ssl_verify_false":
        monkeypatch.setattr(litellm_module, "ssl_verify", False)
    elif trust == "ssl_verify_ca_path":
        monkeypatch.setattr(litellm_module, "ssl_verify", str(certificate.cert))
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    script = _stream(provider) if stream else _whole(provider)
    case = Case(provider, [script], stream=stream, extra=extra_for(provider, with_extra))
    got = await outcome(path, tls_server, case)
    assert_answer(got, response_fields(provider))
    assert got.result["requests"] == 1


@path_param
@extras_param(ALL)
async def test_tls_unknown_certificate_is_refused(
    path: str,
    provider: str,
    with_extra: bool,
    tls_server: HostileServer,
    litellm_module: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(litellm_module, "ssl_verify", True)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_VERIFY", raising=False)
    case = Case(provider, [_whole(provider)], extra=extra_for(provider, with_extra))
    got = await outcome(path, tls_server, case)
    assert got.result.get("error") is not None, got.result
    assert got.result["cause"]
    assert "certificate" in got.result["message"].lower(), got.result
    assert got.result["requests"] == 0  # the handshake failed: no request was read


# == litellm.callbacks ========================================================================

_CALLBACK_LISTS: Final = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "input_callback",
    "service_callback",
    "_async_success_callback",
    "_async_failure_callback",
    "_async_input_callback",
)
CALLBACK_WAIT: Final = 10.0  # LiteLLM runs success hooks in the background


@pytest.fixture
def success_logger(litellm_module: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A ``CustomLogger`` in ``litellm.callbacks``; LiteLLM's callback lists are restored after
    the test (it copies ``callbacks`` into its other lists on a call).
    """
    from litellm.integrations.custom_logger import CustomLogger

    class SuccessLogger(CustomLogger):
        def __init__(self) -> None:
            super().__init__()
            self.successes: list[str] = []

        def log_success_event(
            self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            self.successes.append("sync")

        async def async_log_success_event(
            self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
        ) -> None:
            self.successes.append("async")

    for name in _CALLBACK_LISTS:
        if hasattr(litellm_module, name):
            monkeypatch.setattr(litellm_module, name, list(getattr(litellm_module, name)))
    logger = SuccessLogger()
    litellm_module.callbacks.append(logger)
    return logger


async def _wait_for_success(logger: Any) -> None:
    waited = 0.0
    while not logger.successes and waited < CALLBACK_WAIT:
        await asyncio.sleep(0.05)
        waited += 0.05


@path_param
@extras_param(ALL)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_litellm_callbacks_are_called(
    path: str,
    provider: str,
    with_extra: bool,
    stream: bool,
    server: HostileServer,
    success_logger: Any,
) -> None:
    script = _stream(provider) if stream else _whole(provider)
    case = Case(provider, [script], stream=stream, extra=extra_for(provider, with_extra))
    got = await run(path, server, case)
    assert_answer(got, response_fields(provider))
    await _wait_for_success(success_logger)
    assert "async" in success_logger.successes, "litellm.callbacks' success hook was not called"
