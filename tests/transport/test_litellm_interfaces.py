"""Every LiteLLM interface the fast transport relies on, checked by name and signature, then
driven once the way the transport drives it. A LiteLLM release that moves, renames or changes
one fails here with a message naming it (module, attribute, parameter) and the file of ours
that uses it, instead of as a puzzling wrong answer somewhere else.

All of them are public (no leading underscore): the classes and functions LiteLLM's own HTTP
handler uses to drive a provider's configuration (``BaseLLMHTTPHandler``), plus the few steps
of its OpenAI and Anthropic handlers that live outside the configuration (routes.py).
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from aiecs_llm.providers import engine as _litellm
from aiecs_llm.transport import provider_request

FAST = "aiecs_llm/transport/fast.py"
REQUEST = "aiecs_llm/transport/provider_request.py"
ROUTES = "aiecs_llm/transport/routes.py"
CHUNKS = "aiecs_llm/transport/chunks.py"
ENGINE = "aiecs_llm/providers/engine.py"


@dataclass(frozen=True)
class Interface:
    """``module.attribute`` (dots walk into classes), taking at least ``parameters``."""

    module: str
    attribute: str
    parameters: tuple[str, ...]
    used_by: str

    @property
    def name(self) -> str:
        return f"{self.module}.{self.attribute}"


CONFIG = "litellm.llms.base_llm.chat.transformation"
HANDLER = "litellm.llms.custom_httpx.http_handler"
ANTHROPIC = "litellm.llms.anthropic.chat"


def _needs(module: str, attribute: str, parameters: str, used_by: str) -> Interface:
    return Interface(module, attribute, tuple(parameters.split()), used_by)


MAPPED = " ".join(sorted(provider_request.MAPPED_PARAMETERS))
INTERFACES = (
    _needs("litellm", "ProviderConfigManager.get_provider_chat_config", "model provider", REQUEST),
    _needs("litellm", "LlmProviders", "", REQUEST),
    _needs("litellm", "get_optional_params", f"model custom_llm_provider {MAPPED}", REQUEST),
    _needs("litellm", "exception_type", "model original_exception custom_llm_provider", FAST),
    _needs("litellm", "logging_callback_manager.get_all_callbacks", "", FAST),
    _needs("litellm", "OpenAIConfig.get_config", "", ROUTES),
    _needs(
        CONFIG,
        "BaseConfig.validate_environment",
        "headers model messages optional_params litellm_params api_key api_base",
        REQUEST,
    ),
    _needs(
        CONFIG,
        "BaseConfig.get_complete_url",
        "api_base api_key model optional_params litellm_params stream",
        REQUEST,
    ),
    _needs(
        CONFIG,
        "BaseConfig.async_transform_request",
        "model messages optional_params litellm_params headers",
        REQUEST,
    ),
    _needs(
        CONFIG,
        "BaseConfig.transform_extra_body",
        "extra_body request model litellm_params",
        REQUEST,
    ),
    _needs(
        CONFIG,
        "BaseConfig.sign_request",
        "headers optional_params request_data api_base api_key model stream fake_stream",
        REQUEST,
    ),
    _needs(
        CONFIG,
        "BaseConfig.transform_response",
        "model raw_response model_response logging_obj request_data messages optional_params"
        " litellm_params encoding api_key json_mode",
        FAST,
    ),
    _needs(CONFIG, "BaseConfig.get_error_class", "error_message status_code headers", FAST),
    _needs(
        CONFIG,
        "BaseConfig.get_model_response_iterator_for_request",
        "streaming_response sync_stream json_mode optional_params logging_obj",
        FAST,
    ),
    _needs(CONFIG, "BaseConfig.supports_stream_param_in_request_body", "", REQUEST),
    _needs(
        "litellm.llms.base_llm.base_utils", "BaseLLMModelInfo.get_api_base", "api_base", REQUEST
    ),
    _needs(
        "litellm.litellm_core_utils.get_litellm_params",
        "get_litellm_params",
        "custom_llm_provider api_base",
        REQUEST,
    ),
    _needs("litellm.litellm_core_utils.url_utils", "ensure_api_route", "api_base route", REQUEST),
    _needs("litellm.litellm_core_utils.core_helpers", "map_finish_reason", "finish_reason", FAST),
    _needs(
        "litellm.litellm_core_utils.litellm_logging",
        "Logging",
        "model messages stream call_type start_time litellm_call_id function_id",
        FAST,
    ),
    _needs("litellm.types.utils", "ModelResponse.hidden_params", "", "aiecs_llm/client/reading.py"),
    _needs(
        "litellm.types.utils",
        "ModelResponseStream.hidden_params",
        "",
        "aiecs_llm/client/reading.py",
    ),
    _needs(
        "litellm.responses.bridge_check",
        "responses_api_bridge_check",
        "model custom_llm_provider tools api_base",
        FAST,
    ),
    _needs(HANDLER, "AsyncHTTPHandler", "timeout follow_redirects", ENGINE),
    _needs(HANDLER, "AsyncHTTPHandler.client", "", FAST),
    _needs("litellm.llms.openai.common_utils", "BaseOpenAILLM.get_async_http_client", "", ENGINE),
    _needs(
        "litellm.anthropic_beta_headers_manager",
        "update_request_with_filtered_beta",
        "headers request_data provider api_base",
        ROUTES,
    ),
    _needs(
        "litellm.anthropic_beta_gated_fields",
        "strip_beta_gated_request_body",
        "request headers drop_params model provider",
        ROUTES,
    ),
    _needs(
        f"{ANTHROPIC}.handler",
        "ModelResponseIterator",
        "streaming_response sync_stream json_mode speed tool_name_reverse_map"
        " response_format_schema",
        ROUTES,
    ),
    _needs(f"{ANTHROPIC}.handler", "ModelResponseIterator.chunk_parser", "chunk", CHUNKS),
    _needs(f"{ANTHROPIC}.handler", "ModelResponseIterator.cut_stream_chunk", "", ROUTES),
    _needs(f"{ANTHROPIC}.transformation", "ANTHROPIC_TOOL_NAME_REVERSE_MAP_KEY", "", ROUTES),
    _needs(f"{ANTHROPIC}.transformation", "JsonModeRequest.tool_schema", "", ROUTES),
)


def _resolve(interface: Interface) -> Any:
    _litellm.litellm()  # configured before any LiteLLM module is imported
    try:
        target: Any = importlib.import_module(interface.module)
    except ImportError as exc:
        pytest.fail(
            f"LiteLLM module {interface.module} is gone ({exc}); {interface.used_by} uses it"
        )
    for part in interface.attribute.split("."):
        if not hasattr(target, part):
            pytest.fail(
                f"LiteLLM's {interface.name} is gone (no {part!r}); {interface.used_by} uses "
                "it: find where it moved, or pin LiteLLM below this release"
            )
        target = (
            inspect.getattr_static(target, part)
            if inspect.isclass(target)
            else getattr(target, part)
        )
    return target


@pytest.mark.parametrize("interface", INTERFACES, ids=lambda interface: interface.name)
def test_the_interface_is_there_and_takes_what_we_pass(interface: Interface) -> None:
    target = _resolve(interface)
    if isinstance(target, staticmethod | classmethod):
        target = target.__func__
    if isinstance(target, property):
        target = target.fget
    if not interface.parameters:
        return
    signature = inspect.signature(target)
    takes_anything = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    missing = [name for name in interface.parameters if name not in signature.parameters]
    if missing and not takes_anything:
        pytest.fail(
            f"LiteLLM's {interface.name} no longer takes {missing}; {interface.used_by} passes "
            f"them (its signature now: {signature})"
        )


def _config(model: str, provider: str) -> Any:
    return provider_request.chat_config(model, provider)


def test_the_configs_are_the_ones_litellm_dispatches_to() -> None:
    names = {
        ("gpt-4o-mini", "openai"): "OpenAIGPTConfig",
        ("o3", "openai"): "OpenAIOSeriesConfig",
        ("claude-sonnet-4-5", "anthropic"): "AnthropicConfig",
    }
    for (model, provider), expected in names.items():
        config = _config(model, provider)
        assert type(config).__name__ == expected, (
            f"ProviderConfigManager.get_provider_chat_config({model!r}, {provider!r}) now gives "
            f"{type(config).__name__}; check {REQUEST} still builds the request acompletion sends"
        )


def test_the_parameter_mapping_is_litellms() -> None:
    plain = provider_request.mapped_parameters(
        "gpt-4o-mini", "openai", {"temperature": 0.5, "max_tokens": 7, "seed": 1}
    )
    assert plain["max_tokens"] == 7
    assert plain["seed"] == 1
    reasoning = provider_request.mapped_parameters("o3-mini", "openai", {"max_tokens": 7})
    assert reasoning.get("max_completion_tokens") == 7, "o-series max_tokens mapping moved"
    anthropic = provider_request.mapped_parameters(
        "claude-sonnet-4-5", "anthropic", {"stop": ["x"], "max_tokens": 5}
    )
    assert anthropic.get("stop_sequences") == ["x"], "Anthropic stop mapping moved"


def _logging() -> Any:
    from litellm.litellm_core_utils.litellm_logging import Logging

    return Logging(
        model="m",
        messages=[],
        stream=False,
        call_type="acompletion",
        start_time=datetime.now(),
        litellm_call_id="test",
        function_id="test",
    )


@pytest.mark.parametrize(
    ("model", "provider", "answer"),
    [
        (
            "gpt-4o-mini",
            "openai",
            {
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            },
        ),
        (
            "claude-sonnet-4-5",
            "anthropic",
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        ),
    ],
)
def test_a_whole_answer_reads_into_a_model_response(
    model: str, provider: str, answer: dict[str, Any]
) -> None:
    from litellm.types.utils import ModelResponse

    config = _config(model, provider)
    raw = httpx.Response(200, json=answer, request=httpx.Request("POST", "http://127.0.0.1/"))
    response = config.transform_response(
        model=model,
        raw_response=raw,
        model_response=ModelResponse(),
        logging_obj=_logging(),
        request_data={},
        messages=[],
        optional_params={},
        litellm_params={},
        encoding=None,
        api_key=None,
        json_mode=False,
    )
    assert response.choices[0].message.content == "hi"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 3
    assert isinstance(response.hidden_params, dict)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_http_error_is_the_providers_exception_class(provider: str) -> None:
    model = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}[provider]
    error = _config(model, provider).get_error_class(
        error_message='{"error": {"message": "slow down"}}',
        status_code=429,
        headers=httpx.Headers({"retry-after": "2"}),
    )
    assert error.status_code == 429
    assert (
        type(error).__name__ == {"openai": "OpenAIError", "anthropic": "AnthropicError"}[provider]
    )
    # exception_type raises its mapping (the fast transport takes it from there).
    with pytest.raises(_litellm.litellm().RateLimitError):
        _litellm.litellm().exception_type(
            model=model, original_exception=error, custom_llm_provider=provider
        )


def test_the_openai_stream_parser_reads_an_event() -> None:
    config = _config("gpt-4o-mini", "openai")
    parser: Any = config.get_model_response_iterator_for_request(
        streaming_response=None,
        sync_stream=False,
        json_mode=False,
        optional_params={},
        logging_obj=_logging(),
    )
    event = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
    }
    chunk = parser.chunk_parser(event)
    assert type(chunk).__name__ == "ModelResponseStream"
    assert chunk.choices[0].delta.content == "hi"
    assert chunk.model == "gpt-4o-mini-2024-07-18"


def test_the_anthropic_stream_parser_reads_events() -> None:
    from aiecs_llm.transport.routes import ROUTES, StreamSetup

    route = ROUTES["anthropic"]
    assert route.stream_parser is not None
    parser = route.stream_parser(
        StreamSetup(
            config=_config("claude-sonnet-4-5", "anthropic"),
            json_mode=False,
            optional_params={},
            litellm_params={},
        )
    )
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "usage": {"input_tokens": 3, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 1},
        },
    ]
    chunks = [parser.chunk_parser(event) for event in events]
    assert [c.choices[0].delta.content for c in chunks if c.choices][2] == "hi"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage.prompt_tokens == 3
    assert last.usage.completion_tokens == 1
    assert route.stream_end is not None
    assert route.stream_end(parser) is None


def test_gemini_still_needs_acompletion() -> None:
    """The reason Gemini is not on the fast path: its config cannot build a request. When this
    fails, LiteLLM's Gemini config became drivable: it may get a route (routes.py).
    """
    config = _config("gemini-2.5-flash", "gemini")
    with pytest.raises(NotImplementedError):
        config.transform_request(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "hi"}],
            optional_params={},
            litellm_params={},
            headers={},
        )


def test_the_http_client_is_litellms_and_follows_no_redirect() -> None:
    handler = _litellm.http_handler()
    client = handler.client
    assert isinstance(client, httpx.AsyncClient)
    assert client.follow_redirects is False


def _openai_event(delta: dict[str, Any] | None, *, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    event = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(event)}\n\n"


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
STREAMS = {
    "text, usage without details": [
        _openai_event({"role": "assistant", "content": ""}),
        _openai_event({"content": "Hel"}),
        _openai_event({"content": "lo"}),
        _openai_event({}, finish="stop"),
        _openai_event(None, usage=USAGE),
    ],
    "reasoning deltas": [
        _openai_event({"role": "assistant", "reasoning_content": "Think first."}),
        _openai_event({"content": "Hello"}),
        _openai_event({}, finish="stop"),
        _openai_event(None, usage=USAGE),
    ],
    "tool call": [
        _openai_event(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            }
        ),
        _openai_event({}, finish="tool_calls"),
        _openai_event(None, usage={**USAGE, "completion_tokens_details": {"reasoning_tokens": 2}}),
    ],
}


@pytest.mark.parametrize("events", STREAMS.values(), ids=STREAMS.keys())
async def test_the_stream_total_is_litellms_stream_builders(events: list[str]) -> None:
    """The usage the fast stream ends with is what LiteLLM's stream wrapper reports: its
    ``stream_chunk_builder``'s total over the same chunks (chunks.py computes it with
    ``ChunkProcessor.calculate_usage`` when every delta is text, LiteLLM's own shortcut).
    """
    from aiecs_llm.transport.chunks import ConfigChunkStream

    litellm = _litellm.litellm()
    config = _config("gpt-4o-mini", "openai")
    parser = config.get_model_response_iterator_for_request(
        streaming_response=None,
        sync_stream=False,
        json_mode=False,
        optional_params={},
        logging_obj=_logging(),
    )
    body = "".join(events).encode() + b"data: [DONE]\n\n"
    response = httpx.Response(200, content=body, request=httpx.Request("POST", "http://x/"))
    messages = [{"role": "user", "content": "Say hello"}]
    stream = ConfigChunkStream(
        response,
        parser,
        stream_end=None,
        map_finish_reason=lambda reason: reason,
        mapped=lambda exc: exc,
        messages=messages,
    )
    received = [chunk async for chunk in stream]
    total = received[-1]
    assert total.choices == []
    built = litellm.stream_chunk_builder(chunks=received[:-1], messages=messages)
    assert total.usage == built.usage, "LiteLLM's stream builder totals usage differently now"
