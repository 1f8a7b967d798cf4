"""Malformed provider answers: truncated JSON, fields missing or of the wrong type, empty
choices, invalid SSE. Each must end as a classified ``LLMClientError`` (a subclass, never the
bare root, never an ``AttributeError``) or as a well-formed answer, with exactly one ledger row.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiecs_llm
from aiecs_llm import LLMMessage, LLMResponse
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.errors import InvalidResponseError, LLMClientError, StreamInterruptedError
from aiecs_llm.resilience import state
from tests.fake_provider import Reply
from tests.fake_provider.anthropic_wire import AnthropicWire
from tests.fake_provider.gemini_wire import GeminiWire
from tests.fake_provider.openai_wire import OpenAIWire
from tests.fake_provider.wire import Call, IdSource
from tests.reliability.chaos_server import ChaosServer, MutatedReply, RawReply
from tests.servers import MODELS, base_url

# LiteLLM's response objects warn when they serialize the wrong types they were given.
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
MESSAGES = [LLMMessage("user", "Say hello in five words.")]
PROVIDERS = ("openai", "anthropic", "google")
WIRES = {"openai": OpenAIWire(), "anthropic": AnthropicWire(), "google": GeminiWire()}
WIRE_NAMES = {"openai": "openai", "anthropic": "anthropic", "google": "gemini"}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
Path = tuple[str | int, ...]


def _sample_call(provider: str, *, stream: bool) -> Call:
    return Call(
        provider=WIRE_NAMES[provider],  # type: ignore[arg-type]
        model=MODELS[provider],
        stream=stream,
        include_usage=True,
        reply=Reply.ok(),
        ids=IdSource(1),
        created=int(time.time()),
        api_key="x",
    )


def _documents(provider: str, *, stream: bool) -> list[Any]:
    """The JSON documents a valid answer consists of: one body, or one per SSE event."""
    call = _sample_call(provider, stream=stream)
    wire = WIRES[provider]
    if not stream:
        return [json.loads(wire.completion(call).body)]
    return [json.loads(event.data) for event in wire.stream_events(call) if event.data != "[DONE]"]


def _paths(document: Any, prefix: Path = ()) -> list[Path]:
    found: list[Path] = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


_DELETE = object()


def _mutation(path: Path, new: Any) -> Any:
    def mutate(document: Any) -> Any:
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if new is _DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = new
        return document

    return mutate


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.just([]),
    st.just({}),
    st.lists(st.integers(0, 3), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["text", "type", "role"]), st.text(max_size=4), max_size=2),
)


def _client(server: ChaosServer, provider: str, ledger: UsageLedger) -> Any:
    return aiecs_llm.PROVIDERS[provider](
        api_key="sk-test-malformed-000000000",
        base_url=base_url(server, provider),
        model=MODELS[provider],
        max_retries=0,
        ledger=ledger,
        monitor=LLMMonitor(),
        state=state.InProcessState(),  # a broken answer must not open the next one's circuit
    )


async def _outcome(server: ChaosServer, provider: str, *, stream: bool) -> tuple[Any, list[Any]]:
    """The call's response or error, and its ledger rows."""
    with UsageLedger() as ledger:
        async with _client(server, provider, ledger) as client:
            result: Any
            try:
                if stream:
                    text_stream = client.stream_text(MESSAGES)
                    async for _ in text_stream:
                        pass
                    result = text_stream.response
                else:
                    result = await client.generate_text(MESSAGES)
            except LLMClientError as error:
                result = error
        return result, ledger.rows()


def _assert_well_formed(result: Any, rows: list[Any]) -> None:
    assert len(rows) == 1, rows
    (row,) = rows
    if isinstance(result, LLMResponse):
        assert isinstance(result.content, str)
        for count in (result.prompt_tokens, result.completion_tokens, result.tokens_used):
            assert count is None or isinstance(count, int)
        assert result.cost_estimate is None or isinstance(result.cost_estimate, float)
        assert row.outcome == "success"
        return
    assert isinstance(result, LLMClientError)
    assert type(result) is not LLMClientError, f"unclassified: {result!r}"
    assert (row.outcome, row.error_class) == ("error", type(result).__name__)


@FUZZ
@given(data=st.data(), provider=st.sampled_from(PROVIDERS), stream=st.booleans())
async def test_any_mutated_answer_is_a_classified_error_or_a_well_formed_response(
    chaos, figures, data, provider, stream
):
    documents = _documents(provider, stream=stream)
    event = data.draw(st.integers(0, len(documents) - 1), label="event")
    path = data.draw(st.sampled_from(_paths(documents[event])), label="path")
    new = data.draw(st.one_of(st.just(_DELETE), json_values), label="new value")
    chaos.enqueue(MutatedReply(mutate=_mutation(path, new), event_index=event if stream else None))
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=stream)
    _assert_well_formed(result, rows)


RAW_ANSWERS = {
    "empty body": RawReply(raw_body=b""),
    "html error page": RawReply(raw_body=b"<html><body>502 Bad Gateway</body></html>"),
    "not UTF-8": RawReply(raw_body=b"\xff\xfe\x00\x81garbage"),
    "a JSON string": RawReply(raw_body=b'"hello"'),
    "a JSON number": RawReply(raw_body=b"42"),
    "a JSON list": RawReply(raw_body=b"[]"),
    "an error body with status 200": RawReply(raw_body=b'{"error": {"message": "boom"}}'),
    "truncated JSON": Reply.malformed_json(),
    "cut off mid-body": Reply.cut_stream(after_chunks=0),
}
RAW_STREAMS = {
    "data that is not JSON": (b"data: {not json\n\n",),
    "lines without data:": (b"hello world\n\n",),
    "no events at all": (),
    "data: null": (b"data: null\n\n",),
    "binary data": (b"data: \xff\xfe\n\n",),
    "only [DONE]": (b"data: [DONE]\n\n",),
    "an error event": (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n',
    ),
    "a JSON list": (b"data: []\n\n",),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("answer", list(RAW_ANSWERS))
async def test_a_broken_plain_answer_is_a_classified_error(chaos, figures, provider, answer):
    chaos.enqueue(RAW_ANSWERS[answer])
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=False)
    assert isinstance(result, LLMClientError)
    _assert_well_formed(result, rows)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("answer", list(RAW_STREAMS))
async def test_an_invalid_event_stream_is_a_classified_error(chaos, figures, provider, answer):
    chaos.enqueue(RawReply(raw_events=RAW_STREAMS[answer], content_type="text/event-stream"))
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=True)
    assert isinstance(result, LLMClientError)
    _assert_well_formed(result, rows)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_an_answer_without_choices_is_a_classified_error(chaos, figures, provider, stream):
    emptied = {"openai": "choices", "anthropic": "content", "google": "candidates"}[provider]

    def no_choices(document: Any) -> Any:
        if isinstance(document, dict) and emptied in document:
            document[emptied] = []
        return document

    chaos.enqueue(MutatedReply(mutate=no_choices))
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=stream)
    _assert_well_formed(result, rows)
    if not (provider == "anthropic" and stream):  # its text arrives in deltas, not in content
        assert isinstance(result, LLMClientError) or result.content == ""


@pytest.mark.parametrize("new", [5, ["gpt"], {"name": "x"}], ids=["int", "list", "object"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_wrong_typed_model_name_is_a_classified_error(chaos, figures, provider, new):
    chaos.enqueue(MutatedReply(mutate=_mutation(("model",), new)))
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=False)
    _assert_well_formed(result, rows)


@pytest.mark.parametrize("new", [5, True, ["a"]], ids=["int", "bool", "list"])
async def test_a_wrong_typed_streamed_text_is_a_classified_error(chaos, figures, new):
    # The first chunk (role "assistant", content "") is the one LiteLLM passes through as is.
    path = ("choices", 0, "delta", "content")
    chaos.enqueue(MutatedReply(mutate=_mutation(path, new), event_index=0))
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, "openai", stream=True)
    _assert_well_formed(result, rows)


@pytest.mark.parametrize(
    ("provider", "stream"), [("openai", False), ("openai", True), ("google", True)]
)
async def test_an_answer_without_usage_is_an_invalid_response(chaos, figures, provider, stream):
    field = "usageMetadata" if provider == "google" else "usage"

    def without_usage(document: Any) -> Any:
        if isinstance(document, dict):
            document.pop(field, None)
        return document

    chaos.enqueue(MutatedReply(mutate=without_usage))
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=stream)
    _assert_well_formed(result, rows)
    if stream:  # text was already yielded: a stream without its closing report counts as cut
        assert isinstance(result, StreamInterruptedError), repr(result)
        assert result.partial_text
    else:
        assert isinstance(result, InvalidResponseError), repr(result)
    assert "usage report" in result.message


@pytest.mark.parametrize("count", [-1, 10**22, 1.5e22], ids=["negative", "huge", "huge float"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_absurd_token_count_is_an_invalid_response(chaos, figures, provider, count):
    # Found by the fuzz test: 1e22 output tokens went into the ledger, whose writer thread
    # then died on "Python int too large to convert to SQLite INTEGER".
    path = {
        "openai": ("usage", "completion_tokens"),
        "anthropic": ("usage", "output_tokens"),
        "google": ("usageMetadata", "candidatesTokenCount"),
    }[provider]
    chaos.enqueue(MutatedReply(mutate=_mutation(path, count)))
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=False)
    _assert_well_formed(result, rows)
    assert isinstance(result, InvalidResponseError), repr(result)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_truncated_json_is_an_invalid_response(chaos, figures, provider):
    chaos.enqueue(Reply.malformed_json())
    figures.inputs_tried += 1
    figures.requests += 1
    result, rows = await _outcome(chaos, provider, stream=False)
    _assert_well_formed(result, rows)
    assert isinstance(result, InvalidResponseError), repr(result)
    assert result.status_code is None  # LiteLLM's 500 or 422 is not what the provider said
    assert "\n" not in result.message  # LiteLLM's traceback is left out


async def test_broken_answers_do_not_open_the_circuit(chaos, figures):
    # Not an outage: a shared breaker must not count them (five failures would open it).
    async with aiecs_llm.OpenAIClient(
        api_key="sk-test-malformed-000000000",
        base_url=base_url(chaos, "openai"),
        max_retries=2,
        ledger=UsageLedger(),
        monitor=LLMMonitor(),
        state=state.InProcessState(),
    ) as client:
        for _ in range(6):
            chaos.enqueue(Reply.malformed_json())
            with pytest.raises(InvalidResponseError):
                await client.generate_text(MESSAGES)
        chaos.enqueue(Reply.ok())
        response = await client.generate_text(MESSAGES)
    figures.requests += 7
    assert response.content
    assert len(chaos.requests) == 7  # and none of them was retried


def test_the_mutation_space_covers_every_field():
    for provider in PROVIDERS:
        for stream in (False, True):
            documents = _documents(provider, stream=stream)
            assert documents
            assert all(_paths(document) for document in documents)
    openai_paths = _paths(_documents("openai", stream=False)[0])
    assert ("usage", "prompt_tokens") in openai_paths
    assert ("choices", 0, "message", "content") in openai_paths
    document = {"a": {"b": [1, 2]}}
    assert _mutation(("a", "b", 1), _DELETE)(document) == {"a": {"b": [1]}}
