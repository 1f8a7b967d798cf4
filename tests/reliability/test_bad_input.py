"""Bad input, property-based: every mistake a caller can make fails with a clear error before
any HTTP request is sent, never deep inside LiteLLM.

Clear means: ``ValueError`` (pydantic's ``ValidationError`` is one) for a malformed message,
``InvalidRequestError`` for an invalid argument, ``ConfigurationError`` for a bad
configuration, ``ModelNotFoundError`` for a model string no provider knows. The local server
counts requests, so "before any HTTP" is checked, not assumed. Examples are derandomized: CI
sees the same ones every run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import aiecs_llm
from aiecs_llm import LiteLLMClient, LLMMessage, LLMSettings, OpenAIClient
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.errors import (
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    LLMClientError,
    ModelNotFoundError,
)
from aiecs_llm.providers import engine as _litellm
from tests.reliability.chaos_server import ChaosServer
from tests.servers import settings_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REJECTED = (ValueError, InvalidRequestError, ConfigurationError)
# gpt-4o-mini in LiteLLM's map: what the model can produce, and what it can read.
MAX_OUTPUT = 16_384

# -- strategies --------------------------------------------------------------------------------

# Anything but a mapping (a mapping in a conversation is a message: see message_dicts, and
# the test of dicts with other keys than role and content).
not_a_message = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.lists(st.integers(), max_size=3),
)
junk = st.one_of(
    not_a_message, st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=2)
)
# Text as callers really produce it: any code point, lone surrogates (what a non-UTF-8 byte
# decoded with surrogateescape becomes) and blank strings included.
any_text = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=["Cs", "Zs", "Cc"]), max_size=8),
    st.sampled_from(["", " ", "\n\t", "\x00", "a\udc80b", "\ud800"]),
    st.binary(max_size=16).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)
roles = st.one_of(st.sampled_from(["system", "user", "assistant"]), st.text(max_size=10), junk)
message_dicts = st.fixed_dictionaries({"role": roles, "content": st.one_of(any_text, junk)})


@st.composite
def built_messages(draw: st.DrawFn) -> Any:
    """An LLMMessage when the role and content are valid, else whatever the caller holds."""
    role, content = draw(roles), draw(st.one_of(any_text, junk))
    try:
        return LLMMessage(role, content)
    except ValueError:
        return {"role": role, "content": content}


conversations = st.one_of(
    st.lists(st.one_of(built_messages(), message_dicts, not_a_message), max_size=4),
    st.lists(built_messages(), max_size=3).map(tuple),
    junk,
    st.text(max_size=10),
)


def _valid(value: object) -> bool:
    if isinstance(value, LLMMessage):
        return True
    if not isinstance(value, dict) or set(value) != {"role", "content"}:
        return False
    try:
        LLMMessage(**value)
    except ValueError:
        return False
    return True


def _is_conversation(messages: object) -> bool:
    return (
        isinstance(messages, list | tuple)
        and len(messages) > 0
        and all(_valid(message) for message in messages)
    )


# -- helpers -----------------------------------------------------------------------------------


def _client(server: ChaosServer, **options: Any) -> OpenAIClient:
    options.setdefault("max_retries", 0)
    return OpenAIClient(
        api_key="sk-test-bad-input-0000000000",
        base_url=server.openai_base,
        ledger=UsageLedger(),
        monitor=LLMMonitor(),
        **options,
    )


async def _attempt(client: LiteLLMClient, messages: Any, /, *, stream: bool, **kwargs: Any) -> Any:
    """Run one call to its end; returns the response or raises."""
    if stream:
        text_stream = client.stream_text(messages, **kwargs)
        async for _ in text_stream:
            pass
        return text_stream.response
    return await client.generate_text(messages, **kwargs)


async def _rejected_before_http(
    server: ChaosServer, client: LiteLLMClient, messages: Any, *, stream: bool, **kwargs: Any
) -> BaseException:
    sent = len(server.requests)
    with pytest.raises(Exception) as caught:
        await _attempt(client, messages, stream=stream, **kwargs)
    assert len(server.requests) == sent, f"{caught.value!r} came after an HTTP request"
    return caught.value


# -- messages ----------------------------------------------------------------------------------


@FUZZ
@given(messages=conversations, stream=st.booleans())
@example(messages=[], stream=False)
@example(messages=[{"role": "user", "content": "a\udc80b"}], stream=True)
@example(messages=[{"role": "user", "content": b"\xff\xfe"}], stream=False)
@example(messages=(m for m in MESSAGES), stream=False)
async def test_malformed_messages_fail_clearly_before_any_request(chaos, figures, messages, stream):
    figures.inputs_tried += 1
    async with _client(chaos) as client:
        if _is_conversation(messages):
            response = await _attempt(client, messages, stream=stream)
            assert response.content
            figures.requests += 1
            return
        error = await _rejected_before_http(chaos, client, messages, stream=stream)
    assert isinstance(error, REJECTED), f"{type(error).__name__}: {error}"


@FUZZ
@given(
    extra=st.dictionaries(
        st.one_of(st.text(min_size=1, max_size=8), st.integers()).filter(
            lambda key: key not in ("role", "content")
        ),
        st.text(max_size=5),
        min_size=1,
        max_size=2,
    ),
    drop_content=st.booleans(),
)
async def test_dict_messages_with_other_keys_fail_with_a_value_error(
    chaos, figures, extra, drop_content
):
    figures.inputs_tried += 1
    message: dict[Any, Any] = {"role": "user", "content": "Hi"} | extra
    if drop_content:
        del message["content"]
    async with _client(chaos) as client:
        error = await _rejected_before_http(chaos, client, [message], stream=False)
    assert isinstance(error, REJECTED), f"{type(error).__name__}: {error}"


@pytest.mark.parametrize("shape", ["one long message", "many messages"])
async def test_a_conversation_larger_than_the_context_window_fails_before_any_request(
    chaos, figures, shape
):
    figures.inputs_tried += 1
    words = "lorem ipsum dolor sit amet " * 150_000  # ~750k tokens for a 128k window
    if shape == "one long message":
        messages = [LLMMessage("user", words)]
    else:
        messages = [LLMMessage("user", words[i : i + 4000]) for i in range(0, len(words), 4000)]
    async with _client(chaos) as client:
        error = await _rejected_before_http(chaos, client, messages, stream=False)
    assert isinstance(error, ContextWindowExceededError)
    assert error.model == "openai/gpt-4o-mini"
    assert "128,000" in error.message


@pytest.mark.parametrize("case", ["a larger fallback", "text that packs into few tokens"])
async def test_a_conversation_some_model_can_read_is_sent(chaos, figures, case):
    figures.inputs_tried += 1
    figures.requests += 1
    if case == "a larger fallback":  # ~750k tokens: too many for gpt-4o-mini, not for Gemini
        text, fallbacks = "lorem ipsum dolor sit amet " * 150_000, ["gemini/gemini-2.5-flash"]
    else:  # four characters a token would say 150k; the tokenizer says a few thousand
        text, fallbacks = "Say hello." + " " * 600_000, []
    settings = settings_for(chaos, fallbacks={"openai/gpt-4o-mini": fallbacks})
    async with LiteLLMClient("openai/gpt-4o-mini", settings=settings, max_retries=0) as client:
        response = await client.generate_text([LLMMessage("user", text)])
    assert response.content
    assert len(chaos.requests) == 1


# -- parameters --------------------------------------------------------------------------------


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_temperature(value: object) -> bool:
    return value is None or (_number(value) and 0 <= value <= 2)


def _valid_max_tokens(value: object) -> bool:
    return value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_OUTPUT
    )


def _valid_timeout(value: object) -> bool:
    return _number(value) and math.isfinite(value) and value > 0


def _valid_retries(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


numbers = st.one_of(
    st.floats(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([0, 1, 2, -1, 2.0000001, MAX_OUTPUT, MAX_OUTPUT + 1, 10**30]),
)
odd_types = st.one_of(st.booleans(), st.text(max_size=4), st.just([1]), st.just({"a": 1}))
OMIT = object()


@FUZZ
@given(
    temperature=st.one_of(st.none(), numbers, odd_types),
    max_tokens=st.one_of(st.none(), numbers, odd_types),
    timeout=st.one_of(
        st.just(OMIT), st.floats(min_value=1, max_value=1e6), numbers, odd_types
    ).filter(lambda v: v is OMIT or not _valid_timeout(v) or v >= 1),
    max_retries=st.one_of(st.just(OMIT), st.integers(-3, 5), numbers, odd_types),
    tags=st.one_of(
        st.just(OMIT), st.dictionaries(st.text(max_size=5), st.text(max_size=5)), odd_types
    ),
    stream=st.booleans(),
)
async def test_invalid_parameters_fail_before_any_request(
    chaos, figures, temperature, max_tokens, timeout, max_retries, tags, stream
):
    figures.inputs_tried += 1
    kwargs = {
        name: value
        for name, value in {"timeout": timeout, "max_retries": max_retries, "tags": tags}.items()
        if value is not OMIT
    }
    valid = (
        _valid_temperature(temperature)
        and _valid_max_tokens(max_tokens)
        and ("timeout" not in kwargs or _valid_timeout(timeout))
        and ("max_retries" not in kwargs or _valid_retries(max_retries))
        and ("tags" not in kwargs or isinstance(tags, dict))
    )
    async with _client(chaos) as client:
        if valid:
            response = await _attempt(
                client,
                MESSAGES,
                stream=stream,
                temperature=temperature,
                max_tokens=max_tokens,
                **kwargs,
            )
            assert response.content
            figures.requests += 1
            return
        error = await _rejected_before_http(
            chaos,
            client,
            MESSAGES,
            stream=stream,
            temperature=temperature,
            max_tokens=max_tokens,
            **kwargs,
        )
    assert isinstance(error, InvalidRequestError | ConfigurationError), repr(error)


@pytest.mark.parametrize(("stream", "flag"), [(False, True), (True, False)])
async def test_the_clients_own_parameters_cannot_be_overridden(chaos, figures, stream, flag):
    figures.inputs_tried += 1
    async with _client(chaos) as client:
        with pytest.raises(InvalidRequestError, match="stream"):
            if stream:
                async for _ in client.stream_text(MESSAGES, stream=flag):
                    pass
            else:
                await client.generate_text(MESSAGES, stream=flag)
    assert chaos.requests == []


# What the client sets on each request itself (``model`` and ``messages`` are arguments of
# their own in a call; ``max_retries`` is the client's own option).
RESERVED = {
    "api_base": "http://127.0.0.1:9/v1",
    "api_key": "sk-test-override-00000000000",
    "base_url": "http://127.0.0.1:9/v1",
    "client": object(),
    "custom_llm_provider": "anthropic",
    "num_retries": 3,
    "stream_options": {"include_usage": False},
}


@pytest.mark.parametrize("name", sorted(RESERVED))
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_no_parameter_the_client_sets_can_be_overridden(chaos, figures, name, stream):
    figures.inputs_tried += 1
    async with _client(chaos) as client:
        with pytest.raises(InvalidRequestError, match=name):
            await _attempt(client, MESSAGES, stream=stream, **{name: RESERVED[name]})
    assert chaos.requests == []


# api_key and base_url are the constructor's own arguments.
DEFAULT_PARAMETERS = sorted({*RESERVED, "messages", "stream"} - {"api_key", "base_url"})


@pytest.mark.parametrize("name", DEFAULT_PARAMETERS)
def test_no_parameter_the_client_sets_can_be_a_default_parameter(chaos, figures, name):
    figures.inputs_tried += 1
    value = RESERVED.get(name, True)
    with pytest.raises(ConfigurationError, match=name):
        _client(chaos, **{name: value})


# -- model strings -----------------------------------------------------------------------------

printable = st.characters(exclude_categories=["Cc", "Cs"])


def _litellm_provider(model: str) -> str | None:
    try:
        return str(_litellm.litellm().get_llm_provider(model=model)[1])
    except Exception:  # LiteLLM raises a bare Exception for unknown models
        return None


@FUZZ
@given(
    model=st.one_of(
        st.text(printable, max_size=30),
        st.builds(
            "{}/{}".format,
            st.sampled_from(["openai", "anthropic", "gemini", "nosuch", ""]),
            st.text(printable, max_size=20),
        ),
    )
)
@example(model="")
@example(model="   ")
@example(model="definitely-not-a-model")
@example(model="gpt-4o-mni")
async def test_unknown_model_strings_fail_before_any_request(chaos, figures, model):
    # Only registered providers point at the local server; anything else must never be tried
    # (it would leave this machine), so such strings are not part of the property.
    provider = _litellm_provider(model) if model.strip() else None
    assume(provider in (None, "openai", "anthropic", "gemini"))
    figures.inputs_tried += 1
    async with LiteLLMClient(settings=settings_for(chaos), max_retries=0) as client:
        sent = len(chaos.requests)
        outcome: Any
        try:
            outcome = await client.generate_text(MESSAGES, model=model)
        except LLMClientError as error:
            outcome = error
    if provider is None:  # nothing knows this model (or it is no name): refused before HTTP
        assert isinstance(outcome, ModelNotFoundError | ConfigurationError | InvalidRequestError), (
            repr(outcome)
        )
        assert len(chaos.requests) == sent, f"{outcome!r} came after an HTTP request"
    elif isinstance(outcome, LLMClientError):  # the provider's server said what it thinks
        assert type(outcome) is not LLMClientError, repr(outcome)
    else:
        assert outcome.content is not None
        figures.requests += 1


@FUZZ
@given(model=st.one_of(st.integers(min_value=1), st.binary(min_size=1), st.lists(st.text())))
@example(model=0)  # falsy: must not silently mean the default model
@example(model=b"")
@example(model=False)
async def test_a_model_that_is_not_a_string_fails_clearly(chaos, figures, model):
    figures.inputs_tried += 1
    async with _client(chaos) as client:
        error = await _rejected_before_http(chaos, client, MESSAGES, stream=False, model=model)
    assert isinstance(error, InvalidRequestError), repr(error)
    assert "model must be a string" in error.message


@FUZZ
@given(
    provider=st.sampled_from(["openai", "google"]),
    model=st.builds(
        "{}{}{}".format,
        st.text(printable, max_size=6),
        st.characters(categories=["Cc"]),
        st.text(printable, max_size=6),
    ),
)
# Gemini's model goes into the URL path, where these would start a query or a fragment.
@example(provider="google", model="gemini-2.5-flash?alt=json")
@example(provider="google", model="gemini/gemini-2.5-flash#x")
async def test_model_strings_with_control_characters_fail_before_any_request(
    chaos, figures, provider, model
):
    figures.inputs_tried += 1
    client_class = aiecs_llm.PROVIDERS[provider]
    settings = settings_for(chaos)
    async with client_class(settings=settings, max_retries=0) as client:
        error = await _rejected_before_http(chaos, client, MESSAGES, stream=False, model=model)
    # ConfigurationError: a model of nothing but whitespace and control characters is no model.
    assert isinstance(error, InvalidRequestError | ConfigurationError), repr(error)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    "model",
    [
        "../../etc/passwd",
        "gemini/../../v1beta/files",
        "gemini/%2e%2e/%2e%2e/v1beta/files",
        "%2e%2e",
        "gemini-2.5-flash/../../files",
        "gemini/gemini-2.5-flash/",
        "gemini\\..\\files",
        "gpt-4o-mini extra",
        "openai/./gpt-4o-mini",
    ],
)
async def test_model_strings_that_would_leave_the_api_path_fail_before_any_request(
    chaos, figures, provider, stream, model
):
    # Issue 15: model="../../etc/passwd" on Gemini sent POST /etc/passwd:generateContent with
    # the key attached.
    figures.inputs_tried += 1
    client_class = aiecs_llm.PROVIDERS[provider]
    async with client_class(settings=settings_for(chaos), max_retries=0) as client:
        error = await _rejected_before_http(chaos, client, MESSAGES, stream=stream, model=model)
    assert isinstance(error, InvalidRequestError), repr(error)
    assert "is not a model name" in error.message


# -- configuration files -----------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string (a lone surrogate makes it invalid)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(type(value))


def toml_document(document: dict[str, Any]) -> str:
    """Top-level scalars first, then one [table] per nested dict (dotted, quoted names)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            tables.append((json.dumps(key), value))
        else:
            lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    while tables:
        name, table = tables.pop(0)
        lines.append(f"[{name}]")
        for key, value in table.items():
            if isinstance(value, dict) and value:
                tables.append((f"{name}.{json.dumps(key)}", value))
            else:
                lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["UTC", "Europe/Berlin", "Mars/Olympus", "openai/gpt-4o-mini", "x=y", ""]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
PROVIDER_KEYS = [
    "api_key",
    "api_keys",
    "base_url",
    "models",
    "max_concurrency",
    "requests_per_minute",
    "tokens_per_minute",
]
SECTIONS: dict[str, list[str]] = {
    "defaults": ["model", "temperature", "max_tokens", "timeout", "max_retries"],
    "resilience": [
        "max_concurrency",
        "stream_idle_timeout",
        "max_retry_after",
        "breaker_failures",
        "breaker_cooldown",
        "key_cooldown",
        "rate_limit_queue",
        "hedge_delay",
        "hedge_percentile",
    ],
    "budgets": ["daily", "monthly", "timezone"],
}


def _section(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.one_of(st.sampled_from(keys), st.text(max_size=6)), values, max_size=4
    )


config_documents = st.fixed_dictionaries(
    {},
    optional={
        "providers": st.dictionaries(
            st.sampled_from(["openai", "anthropic", "google", "mistral"]),
            st.one_of(_section(PROVIDER_KEYS), values),
            max_size=2,
        ),
        "defaults": st.one_of(_section(SECTIONS["defaults"]), values),
        "resilience": st.one_of(_section(SECTIONS["resilience"]), values),
        "budgets": st.one_of(
            _section(SECTIONS["budgets"]).flatmap(
                lambda section: st.fixed_dictionaries(
                    {},
                    optional={
                        "tags": st.dictionaries(
                            st.text(max_size=8),
                            st.dictionaries(st.sampled_from(["daily", "monthly"]), values),
                            max_size=2,
                        )
                    },
                ).map(lambda tags: section | tags)
            ),
            values,
        ),
        "costs": st.dictionaries(
            st.sampled_from(["gpt-4o-mini", "openai/gpt-4o-mini", "x"]),
            st.one_of(_section(["input", "output"]), values),
            max_size=2,
        ),
        "fallbacks": st.dictionaries(st.text(max_size=10), values, max_size=2),
        "surprise": values,
    },
)


@FUZZ
@given(
    document=st.one_of(
        config_documents.map(toml_document),
        st.text(max_size=80),  # arbitrary UTF-8 text, mostly not TOML at all
    )
)
@example(document="[defaults]\ntimeout = inf\n[resilience]\nstream_idle_timeout = nan\n")
@example(document='[budgets]\ndaily = 1\ntimezone = "Mars/Olympus"\n')
@example(document='[budgets.tags."no-equals-sign"]\ndaily = 1\n')
@example(document="[providers.openai]\nmax_concurrency = 0\n")
@example(document="[defaults]\nmax_tokens = 99999999\n")
async def test_any_config_file_loads_or_fails_with_a_configuration_error(
    chaos, figures, tmp_path, document
):
    figures.inputs_tried += 1
    path = tmp_path / "llm.toml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    try:
        loaded = LLMSettings.load(path)
        client = OpenAIClient(
            api_key="sk-test-config-000000000000", base_url=chaos.openai_base, settings=loaded
        )
    except ConfigurationError:
        return
    async with client:
        # Validated at once; nothing is sent until the stream is iterated.
        with contextlib.suppress(ConfigurationError, InvalidRequestError, ModelNotFoundError):
            client.stream_text(MESSAGES)
    assert chaos.requests == []


@FUZZ
@given(
    raw=st.binary(max_size=40).map(lambda tail: b"\xff" + tail),
)
@example(raw="[defaults]\nmodel = 'gpt-4o'\n".encode("utf-16"))
@example(raw="[defaults]\nmodel = 'caf\xe9'\n".encode("latin-1"))
def test_a_config_file_that_is_not_utf8_fails_with_a_configuration_error(figures, tmp_path, raw):
    figures.inputs_tried += 1
    path = tmp_path / "llm.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigurationError, match=r"llm\.toml"):
        LLMSettings.load(path)


@pytest.mark.parametrize(
    "where", ["a directory", "a missing directory", "not a database", "an empty file"]
)
def test_a_ledger_path_that_cannot_be_used_is_a_configuration_error(figures, tmp_path, where):
    figures.inputs_tried += 1
    path = {
        "a directory": tmp_path,
        "a missing directory": tmp_path / "missing" / "usage.db",
        "not a database": tmp_path / "garbage.db",
        "an empty file": tmp_path / "empty.db",
    }[where]
    if where == "not a database":
        path.write_bytes(b"\x00\xffthis is not SQLite" * 100)
    if where == "an empty file":
        path.write_bytes(b"")
        with UsageLedger(path) as ledger:  # SQLite takes an empty file as a new database
            assert ledger.count() == 0
        return
    config = tmp_path / "llm.toml"
    config.write_text(f"[ledger]\npath = {json.dumps(str(path))}\n")
    with pytest.raises(ConfigurationError, match="usage ledger"):
        OpenAIClient(settings=LLMSettings.load(config))


def test_a_ledger_path_with_a_nul_character_is_a_configuration_error(figures, tmp_path):
    figures.inputs_tried += 1
    config = tmp_path / "llm.toml"
    config.write_text('[ledger]\npath = "usage\\u0000.db"\n')
    with pytest.raises(ConfigurationError):
        OpenAIClient(settings=LLMSettings.load(config))


# -- environment -------------------------------------------------------------------------------

# Every variable of docs/configuration.md except the two that name files (random paths would
# create or read files anywhere; they have their own cases below) and the keys (below too).
VARIABLES = [
    "OPENAI_BASE_URL",
    "LLM_DEFAULT_MODEL",
    "LLM_DEFAULT_TEMPERATURE",
    "LLM_MAX_TOKENS",
    "LLM_TIMEOUT",
    "LLM_MAX_RETRIES",
    "LLM_MAX_CONCURRENCY",
    "LLM_STREAM_IDLE_TIMEOUT",
    "LLM_DAILY_BUDGET",
    "LLM_MONTHLY_BUDGET",
    "LLM_BUDGET_TIMEZONE",
]
NAMES = ("LLM_DEFAULT_MODEL", "LLM_BUDGET_TIMEZONE")
# What an environment can hold: no NUL; undecodable bytes arrive as \udc80-\udcff.
env_text = st.one_of(
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=16),
    st.binary(max_size=8).map(
        lambda raw: raw.replace(b"\x00", b"").decode("utf-8", "surrogateescape")
    ),
    st.sampled_from(["inf", "-inf", "nan", "1e309", "0", "-1", "1e3", "99999999999999999999", ""]),
)


@FUZZ
@given(environment=st.dictionaries(st.sampled_from(VARIABLES), env_text, min_size=1, max_size=3))
@example(environment={"LLM_TIMEOUT": "soon"})
@example(environment={"LLM_DAILY_BUDGET": "5", "LLM_BUDGET_TIMEZONE": "Nowhere/Nothing"})
@example(environment={"LLM_MAX_TOKENS": "99999999999999999999"})
@example(environment={"LLM_DEFAULT_MODEL": "openai/"})
async def test_any_environment_value_works_or_fails_with_a_configuration_error(
    chaos, figures, environment
):
    figures.inputs_tried += 1
    saved = {name: os.environ.get(name) for name in environment}
    try:
        for name, value in environment.items():
            os.environ[name] = value
        refused: ConfigurationError | None = None
        try:
            client = OpenAIClient(api_key="sk-test-env-0000000000000")
        except ConfigurationError as error:
            refused = error
        if refused is None:
            async with client:
                with contextlib.suppress(
                    ConfigurationError, InvalidRequestError, ModelNotFoundError
                ):
                    client.stream_text(MESSAGES)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert chaos.requests == []
    if refused is not None:
        # "A value that does not parse ... the value itself is never echoed" (names such as
        # a timezone or a model may be quoted back: they are what the caller must fix).
        for name, value in environment.items():
            if name.startswith("LLM_") and name not in NAMES and len(value.strip()) >= 8:
                assert value not in refused.message


@pytest.mark.parametrize("value", ["missing.toml", "a directory"])
def test_a_config_file_variable_naming_nothing_usable_is_a_configuration_error(
    figures, monkeypatch, tmp_path, value
):
    figures.inputs_tried += 1
    target = tmp_path / "missing.toml" if value == "missing.toml" else tmp_path
    monkeypatch.setenv("LLM_CONFIG_FILE", str(target))
    with pytest.raises(ConfigurationError, match=re.escape(str(target))):
        LLMSettings.load()


def test_a_usage_db_variable_naming_nothing_usable_is_a_configuration_error(
    figures, monkeypatch, tmp_path
):
    figures.inputs_tried += 1
    monkeypatch.setenv("LLM_USAGE_DB", str(tmp_path / "missing" / "usage.db"))
    with pytest.raises(ConfigurationError, match="usage ledger"):
        OpenAIClient()


@FUZZ
@given(
    key=st.builds(
        "{}{}{}".format,
        st.just("sk-"),
        st.one_of(
            st.characters(min_codepoint=0x80, exclude_categories=["Cs"]),
            st.sampled_from(["\n", "\r", "\udc80", "\x00", "\x7f"]),
        ),
        # Not last: numbered keys are stripped of surrounding whitespace, as pasted.
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    ),
    source=st.sampled_from(["argument", "OPENAI_API_KEY", "OPENAI_API_KEY_1", "config file"]),
)
async def test_a_key_that_cannot_be_sent_is_a_configuration_error(
    chaos, figures, monkeypatch, tmp_path, key, source
):
    assume(not (source.startswith("OPENAI_") and "\x00" in key))  # no environment holds a NUL
    assume(not (source == "config file" and "\udc80" in key))  # nor a TOML file a surrogate
    figures.inputs_tried += 1
    config = tmp_path / "llm.toml"
    escaped = "".join(
        char if " " <= char <= "~" and char not in '"\\' else f"\\U{ord(char):08x}" for char in key
    )
    config.write_text(f'[providers.openai]\napi_key = "{escaped}"\n')
    # Refused where the key enters, when the client is made: no call is ever tried with it.
    with monkeypatch.context() as environment, pytest.raises(ConfigurationError) as caught:
        environment.delenv("OPENAI_API_KEY", raising=False)
        if source.startswith("OPENAI_"):
            environment.setenv(source, key)
        if source == "argument":
            OpenAIClient(key, chaos.openai_base, max_retries=0)
        elif source == "config file":
            OpenAIClient(base_url=chaos.openai_base, settings=LLMSettings.load(config))
        else:
            OpenAIClient(base_url=chaos.openai_base, max_retries=0)
    expected = {"argument": "api_key", "config file": "providers.openai.api_key"}.get(
        source, source
    )
    assert expected in caught.value.message  # names where the key came from
    assert key[3:] not in caught.value.message  # never what it is
    assert chaos.requests == []


def test_the_property_oracles_agree_with_the_documentation():
    # The validity rules the properties use, pinned against the documented ranges, so a
    # mistake in an oracle cannot make a property vacuous.
    assert [_valid_temperature(v) for v in (0, 2.0, 2.01, True, math.nan)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert [_valid_max_tokens(v) for v in (MAX_OUTPUT, MAX_OUTPUT + 1, 0, 10.0)] == [
        True,
        False,
        False,
        False,
    ]
    info = _litellm.model_info("openai/gpt-4o-mini", "openai") or {}
    assert info.get("max_output_tokens") == MAX_OUTPUT
    assert _is_conversation(MESSAGES)
    for not_one in ([], "hi", [{"role": "user", "content": " "}]):
        assert not _is_conversation(not_one)
    assert toml_document({"a": {"b": {"c": 1}}, "d": "x"}) == (
        '"d" = "x"\n["a"]\n["a"."b"]\n"c" = 1\n'
    )
