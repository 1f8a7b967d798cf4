"""The LiteLLM internals aiecs_llm relies on beyond ``litellm.acompletion``, each checked for
the name, signature and behaviour we use. When one of these fails after a LiteLLM upgrade, the
message says what moved; fix ``aiecs_llm/providers/engine.py`` (the only module that touches
them) or
keep the pin in pyproject.toml below that release.
"""

from __future__ import annotations

import gc
import importlib
import inspect
from typing import Any

import pytest

from aiecs_llm.providers import engine as _litellm

# (module, attribute, parameters our code passes by name)
INTERNALS = [
    (
        "litellm.utils",
        "get_optional_params",
        ("model", "custom_llm_provider", "temperature", "max_tokens", "stream", "stream_options"),
    ),
    ("litellm.utils", "ProviderConfigManager", ()),
    ("litellm.types.utils", "LlmProviders", ()),
    ("litellm.types.utils", "Usage", ()),
    (
        "litellm.litellm_core_utils.exception_mapping_utils",
        "exception_type",
        ("model", "original_exception", "custom_llm_provider"),
    ),
    ("litellm.litellm_core_utils.core_helpers", "map_finish_reason", ("finish_reason",)),
    ("litellm", "cost_per_token", ("model", "custom_llm_provider", "usage_object")),
    ("litellm", "APIConnectionError", ("message", "llm_provider", "model")),
    ("litellm", "Timeout", ("message", "model", "llm_provider")),
    ("litellm.litellm_core_utils.url_utils", "ensure_api_route", ("api_base", "route")),
    (
        "litellm.anthropic_beta_headers_manager",
        "update_request_with_filtered_beta",
        ("headers", "request_data", "provider", "api_base"),
    ),
    (
        "litellm.anthropic_beta_gated_fields",
        "strip_beta_gated_request_body",
        ("drop_params", "model", "provider"),
    ),
    (
        "litellm.llms.anthropic.chat.handler",
        "ModelResponseIterator",
        ("streaming_response", "sync_stream"),
    ),
]


def _resolve(module: str, attribute: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        pytest.fail(
            f"LiteLLM internal {module}.{attribute} is gone ({exc}); "
            "aiecs_llm/providers/engine.py uses "
            "it for the direct transport: find where it moved, or pin LiteLLM below this release"
        )


@pytest.mark.parametrize(
    ("module", "attribute", "parameters"), INTERNALS, ids=[f"{m}.{a}" for m, a, _ in INTERNALS]
)
def test_internal_exists_with_the_parameters_we_pass(
    module: str, attribute: str, parameters: tuple[str, ...]
) -> None:
    _litellm.litellm()
    target = _resolve(module, attribute)
    accepted = inspect.signature(target).parameters
    missing = [name for name in parameters if name not in accepted]
    assert not missing, (
        f"LiteLLM's {module}.{attribute} no longer takes {missing}; "
        "aiecs_llm/providers/engine.py passes "
        f"them. Its signature is now {inspect.signature(target)}"
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_provider_config_has_the_error_class_hook(provider: str) -> None:
    config = _litellm.chat_config("model-x", provider)
    assert config is not None, f"LiteLLM has no chat config for {provider!r} any more"
    signature = inspect.signature(config.get_error_class)
    assert {"error_message", "status_code", "headers"} <= set(signature.parameters), (
        f"{type(config).__name__}.get_error_class changed: {signature}"
    )


def test_optional_params_map_openai_parameters_as_acompletion_does() -> None:
    plain = _litellm.optional_params("gpt-4o-mini", "openai", temperature=0.5, max_tokens=7)
    assert plain["temperature"] == 0.5
    assert plain["max_tokens"] == 7
    reasoning = _litellm.optional_params(
        "o3-mini", "openai", max_tokens=7, stream=True, stream_options={"include_usage": True}
    )
    assert reasoning["max_completion_tokens"] == 7, "o-series max_tokens mapping changed"
    assert reasoning["stream_options"] == {"include_usage": True}


def test_http_errors_become_litellm_exception_classes() -> None:
    litellm = _litellm.litellm()
    body = '{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
    error = _litellm.provider_error(
        provider="openai",
        model="gpt-4o-mini",
        status=429,
        text=body,
        headers={"retry-after": "3"},
    )
    assert isinstance(error, litellm.RateLimitError), type(error)
    assert error.status_code == 429
    assert "slow down" in str(error)
    missing = _litellm.provider_error(
        provider="openai", model="gpt-4o-mini", status=404, text="{}", headers={}
    )
    assert isinstance(missing, litellm.NotFoundError), type(missing)


def test_usage_and_prices_are_litellm_s() -> None:
    usage = _litellm.usage({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    prompt_cost, completion_cost = _litellm.litellm().cost_per_token(
        model="gpt-4o-mini", custom_llm_provider="openai", usage_object=usage
    )
    assert prompt_cost > 0
    assert completion_cost > 0


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("stop", "stop"), ("end_turn", "stop"), ("max_tokens", "length"), ("MAX_TOKENS", "length")],
)
def test_finish_reasons_are_normalised(raw: str, normalised: str) -> None:
    assert _litellm.finish_reason(raw) == normalised


def test_litellm_import_is_frozen_out_of_the_collector() -> None:
    _litellm.litellm()
    assert gc.get_freeze_count() > 100_000


def test_anthropic_request_is_litellm_s() -> None:
    url, headers, body = _litellm.anthropic_request(
        model="claude-sonnet-4-5",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        optional=_litellm.optional_params(
            "claude-sonnet-4-5", "anthropic", temperature=0.2, max_tokens=9, stream=True
        ),
        key="test-key",
        base_url=None,
    )
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["x-api-key"] == "test-key"
    assert "anthropic-version" in headers
    assert body["system"][0]["text"] == "Be brief.", "system message transformation changed"
    assert body["messages"][0]["role"] == "user"
    assert (body["max_tokens"], body["temperature"], body["stream"]) == (9, 0.2, True)


def test_anthropic_answer_and_stream_parsers_are_litellm_s() -> None:
    answer = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 2},
    }
    response = _litellm.anthropic_completion(answer, 200, {})
    assert response.choices[0].message.content == "Hello"
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (10, 2)
    assert response.model == "claude-sonnet-4-5-20250929"

    events = _litellm.anthropic_chunk_parser()
    events.chunk_parser({"type": "message_start", "message": {**answer, "content": []}})
    assert events.served_model == "claude-sonnet-4-5-20250929", "served_model moved"
    delta = events.chunk_parser(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
    )
    assert delta.choices[0].delta.content == "Hi"
    end = events.chunk_parser(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 4},
        }
    )
    assert end.choices[0].finish_reason == "length"
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (10, 4)


GEMINI = "litellm.llms.vertex_ai.gemini"
GEMINI_HANDLER = f"{GEMINI}.vertex_and_google_ai_studio_gemini"
GEMINI_INTERNALS = [
    (
        f"{GEMINI}.transformation",
        "transform_request_body",
        (
            "messages",
            "model",
            "optional_params",
            "custom_llm_provider",
            "litellm_params",
            "cached_content",
        ),
    ),
    (f"{GEMINI}.transformation", "_with_default_output_budget", ()),
    (f"{GEMINI}.long_decode", "merge_hops", ("hops",)),
    (f"{GEMINI}.long_decode", "initial_prompt_tokens_of", ("hops",)),
    (f"{GEMINI}.long_decode", "with_initial_prompt_tokens", ("usage", "initial_prompt_tokens")),
    (f"{GEMINI}.long_decode", "_unary_next_hop_token", ("hops", "output_cap")),
    (f"{GEMINI}.long_decode", "continuation_cap_of", ("request_body",)),
    (f"{GEMINI}.long_decode", "hop_request", ("request_body", "token")),
    (f"{GEMINI}.long_decode", "log_failed_hop", ("error",)),
    ("litellm.llms.vertex_ai.common_utils", "VertexAIError", ("message", "status_code")),
    ("litellm.llms.custom_httpx.sse_lines", "_SSELineSplitter", ()),
    (
        "litellm.litellm_core_utils.streaming_chunk_builder_utils",
        "ChunkProcessor",
        ("chunks", "messages"),
    ),
    ("litellm.litellm_core_utils.token_counter", "token_counter", ("text",)),
    (
        GEMINI_HANDLER,
        "ModelResponseIterator",
        ("streaming_response", "sync_stream", "logging_obj"),
    ),
]


@pytest.mark.parametrize(
    ("module", "attribute", "parameters"),
    GEMINI_INTERNALS,
    ids=[f"{m}.{a}" for m, a, _ in GEMINI_INTERNALS],
)
def test_gemini_internal_exists_with_the_parameters_we_pass(
    module: str, attribute: str, parameters: tuple[str, ...]
) -> None:
    test_internal_exists_with_the_parameters_we_pass(module, attribute, parameters)


# (class, method, parameters our code passes by name)
GEMINI_METHODS = [
    (
        "VertexLLM",
        "_get_token_and_url",
        (
            "model",
            "auth_header",
            "gemini_api_key",
            "vertex_project",
            "vertex_location",
            "vertex_credentials",
            "stream",
            "custom_llm_provider",
            "api_base",
        ),
    ),
    (
        "VertexGeminiConfig",
        "validate_environment",
        ("api_key", "headers", "model", "messages", "optional_params", "litellm_params"),
    ),
    (
        "VertexGeminiConfig",
        "transform_google_generate_content_to_openai_model_response",
        ("completion_response", "model_response", "model", "logging_obj", "raw_response"),
    ),
    ("ModelResponseIterator", "chunk_parser", ("chunk",)),
    ("ModelResponseIterator", "_common_chunk_parsing_logic", ("chunk",)),
    ("ModelResponseIterator", "handle_accumulated_json_chunk", ("chunk", "is_final")),
    ("ModelResponseIterator", "_start_hop", ("response", "token")),
    ("ModelResponseIterator", "_truncated_stream_end", ("token",)),
    ("ModelResponseIterator", "_end_of_unanswered_hop", ("reason",)),
]


@pytest.mark.parametrize(
    ("cls", "method", "parameters"), GEMINI_METHODS, ids=[f"{c}.{m}" for c, m, _ in GEMINI_METHODS]
)
def test_gemini_method_exists_with_the_parameters_we_pass(
    cls: str, method: str, parameters: tuple[str, ...]
) -> None:
    _litellm.litellm()
    target = getattr(_resolve(GEMINI_HANDLER, cls), method, None)
    assert target is not None, (
        f"LiteLLM's {cls}.{method} is gone; aiecs_llm/providers/engine.py uses it"
    )
    accepted = inspect.signature(target).parameters
    missing = [name for name in parameters if name not in accepted]
    assert not missing, f"LiteLLM's {cls}.{method} no longer takes {missing}"


def test_gemini_stream_parser_state_we_read_is_there() -> None:
    parser = _litellm.gemini_chunk_parser({}, {"generationConfig": {"max_output_tokens": 50}})
    for name in ("_pending_hop_token", "_output_cap", "chunk_type", "_json_buffer"):
        assert hasattr(parser, name), f"ModelResponseIterator.{name} moved"
    assert parser._output_cap == 50
    assert parser.chunk_type == "valid_json"


def test_gemini_stream_parser_state_of_plain_events_is_there() -> None:
    """What the direct stream reads and keeps itself for plain text events
    (aiecs_llm/providers/engine.py: gemini_parser_is_fresh, gemini_took_plain_event,
    gemini_usage_chunk): the continuation offsets, the tool-call flags, the per-event
    bookkeeping, the usage of an event with no grounding.
    """
    parser = _litellm.gemini_chunk_parser({}, {"generationConfig": {"max_output_tokens": 50}})
    for name in (
        "_usage_offset",
        "_grounding_offset",
        "_answer_offset",
        "has_seen_tool_calls",
        "is_function_call",
        "_unanswered_hop_token",
        "sent_first_chunk",
        "logging_obj",
    ):
        assert hasattr(parser, name), f"ModelResponseIterator.{name} moved"
    assert _litellm.gemini_parser_is_fresh(parser)
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
    event = {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": usage}
    assert _litellm.gemini_took_plain_event(parser, event) is event
    assert parser._hop_usage is usage, "ModelResponseIterator._with_usage_offset changed"
    assert parser._hop_answer_bytes > 0, "ModelResponseIterator._with_answer_offset changed"
    chunk = _litellm.gemini_usage_chunk(parser, {**event, "modelVersion": "gemini-2.5-flash@1"})
    assert chunk.model == "gemini-2.5-flash"
    assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens) == (3, 2)
    assert _litellm.gemini_finish_reason(None) == "stop"
    assert _litellm.gemini_finish_reason("STOP") == "stop"


def test_gemini_request_is_litellm_s() -> None:
    url, headers, body = _litellm.gemini_request(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        optional=_litellm.optional_params(
            "gemini-2.5-flash", "gemini", temperature=0.2, max_tokens=9, stream=True
        ),
        key="test-key",
        base_url=None,
    )
    assert url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert headers["x-goog-api-key"] == "test-key", "the key moved out of x-goog-api-key"
    assert "key=" not in url
    assert body["system_instruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert body["generationConfig"] == {"temperature": 0.2, "max_output_tokens": 9}


@pytest.mark.parametrize("raw", [b'{"candidates": [', b"[1, 2]"], ids=["truncated", "not-object"])
def test_gemini_unreadable_answer_fails_as_parse_body_does(raw: bytes) -> None:
    import httpx
    from litellm.llms.vertex_ai.common_utils import VertexAIError
    from litellm.llms.vertex_ai.gemini.long_decode import parse_body

    with pytest.raises(VertexAIError) as litellm_s:
        parse_body(httpx.Response(422, content=raw))
    with pytest.raises(VertexAIError) as ours:
        _litellm.gemini_parsed(raw, 200, {})
    assert (ours.value.status_code, ours.value.message) == (
        litellm_s.value.status_code,
        litellm_s.value.message,
    )
