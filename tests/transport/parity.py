"""The parity matrix's harness: choosing a path, running one case on it, and the normalised
outcome compared between the paths.

``make_client`` (with ``on_path``) is the one place that knows how a path is chosen.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

# Public names only: the package's modules are being moved.
from aiecs_llm import (
    AnthropicClient,
    GoogleAIClient,
    LLMClientError,
    LLMMessage,
    LLMSettings,
    OpenAIClient,
)
from tests.transport import wire
from tests.transport.hostile_server import HostileServer, Received, Script

ACOMPLETION: Final = "acompletion"
FAST: Final = "fast"
PATHS: Final = (ACOMPLETION, FAST)
# The switch, under its current name and the name it may be given; both are set.
PATH_SWITCHES: Final = ("LLM_DIRECT_TRANSPORT", "LLM_FAST_TRANSPORT")

KEY: Final = "test-key-parity-0000"
CLIENTS: Final = {"openai": OpenAIClient, "anthropic": AnthropicClient, "gemini": GoogleAIClient}
MODELS: Final = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
SERVED: Final = {
    "openai": wire.OPENAI_MODEL,
    "anthropic": wire.ANTHROPIC_MODEL,
    "gemini": wire.GEMINI_MODEL,
}
# Extra keywords each provider accepts (Anthropic has no seed; o-series models no top_p).
EXTRAS: Final = {
    "o-series": {"seed": 1, "stop": ["x"]},
    "openai": {"seed": 1, "top_p": 0.9, "stop": ["x"]},
    "anthropic": {"top_p": 0.9, "stop": ["x"]},
    "gemini": {"seed": 1, "top_p": 0.9, "stop": ["x"]},
}
USER: Final = [LLMMessage(role="user", content="Say hello")]
TIMINGS: Final = ("response_time", "time_to_first_chunk")
CALL_TIMEOUT: Final = 30.0  # generous: a busy CI box must never time a good call out


# -- choosing the path ---------------------------------------------------------------------


@contextlib.contextmanager
def on_path(path: str) -> Iterator[None]:
    """Clients constructed (and called) inside use ``path``."""
    with pytest.MonkeyPatch.context() as patch:
        for name in PATH_SWITCHES:
            patch.setenv(name, "1" if path == FAST else "0")
        yield


def make_client(path: str, provider: str, server: HostileServer, **options: Any) -> Any:
    """A client of ``provider`` pointed at ``server``, on ``path`` (the one place that knows how
    a path is chosen; call it inside ``on_path(path)``).
    """
    assert os.environ.get(PATH_SWITCHES[0]) == ("1" if path == FAST else "0")
    base = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}[provider]
    options.setdefault("model", MODELS[provider])
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", CALL_TIMEOUT)
    return CLIENTS[provider](api_key=KEY, base_url=server.url + base, **options)


# -- running a case ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one call gave: ``result`` is compared between paths; the rest is for asserts."""

    result: dict[str, Any]
    received: list[Received]
    elapsed: float
    reference: Outcome | None = None
    """On the fast path: the same case through ``litellm.acompletion``."""


@dataclass(frozen=True)
class Case:
    """One call: what the server answers, and how the call is made."""

    provider: str
    scripts: Sequence[Script]
    stream: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    messages: Sequence[LLMMessage] = tuple(USER)
    client_options: dict[str, Any] = field(default_factory=dict)
    call_options: dict[str, Any] = field(default_factory=dict)
    idle_timeout: float | None = None


def _error_result(error: BaseException) -> dict[str, Any]:
    if not isinstance(error, LLMClientError):  # escaped the error tree: shown as such
        return {"escaped": type(error).__name__, "text": str(error)}
    return {
        "error": type(error).__name__,
        "status_code": error.status_code,
        "code": error.code,
        "message": error.message,
        "retry_after": error.retry_after,
        "partial_text": getattr(error, "partial_text", None),
        "cause": error.__cause__ is not None,
    }


async def _call(client: Any, case: Case, chunks: list[str]) -> dict[str, Any]:
    """The answer's fields; a stream's chunks go into ``chunks`` as they arrive (so that they
    are there when it breaks).
    """
    kwargs = {**case.extra, **case.call_options}
    if not case.stream:
        response = await client.generate_text(list(case.messages), **kwargs)
    else:
        stream = client.stream_text(list(case.messages), **kwargs)
        try:
            async for chunk in stream:
                chunks.append(chunk)
        finally:
            await stream.aclose()
        response = stream.response
    return response.model_dump(exclude=set(TIMINGS))


async def run(path: str, server: HostileServer, case: Case) -> Outcome:
    """``case`` on ``path``; the server's queue and record start empty."""
    server.clear()
    server.enqueue(*case.scripts)
    settings = None
    if case.idle_timeout is not None:
        # The [resilience] section, as the config file spells it.
        settings = LLMSettings.model_validate(
            {"resilience": {"stream_idle_timeout": case.idle_timeout}}
        )
    chunks: list[str] = []
    with on_path(path):
        client = make_client(path, case.provider, server, settings=settings, **case.client_options)
        started = time.monotonic()
        try:
            result: dict[str, Any] = {"response": await _call(client, case, chunks)}
        except Exception as exc:
            result = _error_result(exc)
        finally:
            elapsed = time.monotonic() - started
            await client.close()
    if case.stream:
        result["chunks"] = chunks
    received = server.received
    result["requests"] = len(received)
    return Outcome(result, received, elapsed)


async def outcome(
    path: str, server: HostileServer, case: Case, *, same_bodies: bool = False
) -> Outcome:
    """``case`` on ``path``; on the fast path, also required to equal the ``acompletion`` one
    (and with ``same_bodies``, the server to have received the same JSON bodies first).
    """
    got = await run(path, server, case)
    if path == FAST:
        reference = await run(ACOMPLETION, server, case)
        got.reference = reference
        if same_bodies:
            sent = [request.json for request in got.received]
            assert sent == [request.json for request in reference.received], (
                "the server received different bodies from the two paths"
            )
        differences = _differences(comparable(got.result), comparable(reference.result))
        assert not differences, "fast path != litellm.acompletion:\n" + "\n".join(differences)
    return got


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the numbers in its error message masked: a timeout's message may carry
    the seconds measured ("time taken=1.002 seconds"), which differ between any two calls.
    The words must still be the same on both paths.
    """
    message = result.get("message")
    if not isinstance(message, str):
        return result
    return result | {"message": re.sub(r"\d+(?:\.\d+)?", "<n>", message)}


def _differences(fast: Any, reference: Any, where: str = "") -> list[str]:
    """Each field that differs, as ``where: fast=... acompletion=...``."""
    if isinstance(fast, dict) and isinstance(reference, dict):
        found = []
        for name in sorted({*fast, *reference}, key=str):
            missing = "<missing>"
            found += _differences(
                fast.get(name, missing), reference.get(name, missing), f"{where}.{name}"
            )
        return found
    if fast != reference:
        return [f"{where or 'result'}: fast={fast!r} acompletion={reference!r}"]
    return []


def response_fields(provider: str, **fields: Any) -> dict[str, Any]:
    """The answer every plain case expects (the wire module's tokens), with ``fields`` over it."""
    expected = {
        "content": "Hello",
        "provider": "google" if provider == "gemini" else provider,
        "model": SERVED[provider],
        "tokens_used": wire.PROMPT_TOKENS + wire.COMPLETION_TOKENS,
        "prompt_tokens": wire.PROMPT_TOKENS,
        "completion_tokens": wire.COMPLETION_TOKENS,
        "finish_reason": "stop",
        # cached_tokens and reasoning_tokens (the wire reports neither) are compared between
        # the paths only: LiteLLM itself reads "not reported" as None or 0 depending on the
        # provider and on whether the answer was streamed.
        "fallback_from": None,
        "cached": False,
    }
    return expected | fields


def assert_answer(got: Outcome, expected: dict[str, Any]) -> None:
    assert "response" in got.result, got.result
    response = got.result["response"]
    assert {name: response[name] for name in expected} == expected
    cost = response["cost_estimate"]
    assert cost is not None
    assert cost > 0


def assert_error(got: Outcome, error: str, **fields: Any) -> None:
    assert got.result.get("error") == error, got.result
    assert got.result["cause"], "the provider's exception is not kept as __cause__"
    for name, value in fields.items():
        assert got.result[name] == value, (name, got.result)


# -- parameters ----------------------------------------------------------------------------

path_param = pytest.mark.parametrize("path", PATHS)


def extras_param(providers: Sequence[str]) -> pytest.MarkDecorator:
    """Each provider, with and without extra keywords."""
    values = [
        pytest.param(provider, extra, id=f"{provider}-{'extra' if extra else 'plain'}")
        for provider in providers
        for extra in (False, True)
    ]
    return pytest.mark.parametrize(("provider", "with_extra"), values)


def extra_for(provider: str, with_extra: bool) -> dict[str, Any]:
    return dict(EXTRAS[provider]) if with_extra else {}
