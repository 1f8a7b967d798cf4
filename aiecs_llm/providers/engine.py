"""The only module that imports LiteLLM.

``import litellm`` costs seconds and ~200 MB, so it happens on first use, not when aiecs_llm is
imported. Loading also fixes LiteLLM's process-wide switches once, so that nothing has to be
changed per call: the bundled cost map instead of a network fetch, and no banners on stdout.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from functools import cache, lru_cache
from types import ModuleType
from typing import Any

COST_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"


@cache
def litellm() -> ModuleType:
    """The LiteLLM module, configured for library use."""
    # LiteLLM reads this at import time; without it the import downloads the price map.
    # A user who set it either way keeps their choice.
    os.environ.setdefault(COST_MAP_ENV, "True")
    import litellm as module

    # LiteLLM prints "Give Feedback / Get Help" banners to stdout on every exception otherwise.
    module.suppress_debug_info = True
    # LiteLLM's import leaves ~370,000 long-lived objects that every full collection walks
    # again: a ~140 ms pause of the event loop each time. Frozen, they leave the collector's
    # generations (a full collection then takes ~1 ms), and the LiteLLM path used ~15% less
    # CPU per call at concurrency 64 (bench/, docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    loaded: ModuleType = module
    return loaded


def provider_of(model: str) -> tuple[str, str]:
    """Split a LiteLLM model string into (model name, LiteLLM provider); raises LiteLLM's error
    when no provider can be inferred.
    """
    name, provider, _key, _base = litellm().get_llm_provider(model=model)
    return name, provider


def model_info(model: str, provider: str | None = None) -> dict[str, Any] | None:
    """LiteLLM's map entry for a model (context window, prices, deprecation), or None."""
    try:
        info = litellm().get_model_info(model=model, custom_llm_provider=provider)
    except Exception:  # noqa: BLE001 - LiteLLM raises a bare Exception for unmapped models.
        return None
    return dict(info)


def openai_sdk_client(*, api_key: str | None, base_url: str | None, timeout: float) -> Any:
    """An ``openai.AsyncOpenAI`` owned by one of our clients, with the SDK's retries off.

    Its HTTP client is the one LiteLLM builds for its own OpenAI clients (an aiohttp transport
    under httpx): measured in bench/, it serves 64 concurrent calls about a third faster than
    the SDK's default pool.
    """
    import openai

    litellm()
    from litellm.llms.openai.common_utils import BaseOpenAILLM

    return openai.AsyncOpenAI(
        api_key=api_key or "not-needed",
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        http_client=BaseOpenAILLM._get_async_http_client(),
    )


def http_handler(*, timeout: float) -> Any:
    """A LiteLLM ``AsyncHTTPHandler`` owned by one of our clients (Anthropic, Gemini paths)."""
    litellm()
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    return AsyncHTTPHandler(timeout=timeout)


# -- the pieces of LiteLLM the direct transport (aiecs_llm/direct) drives ------------------------
# tests/providers/test_litellm_internals.py fails with a clear message when one of them moves or
# changes.


@lru_cache(maxsize=1024)
def _optional_params(
    model: str, provider: str, params: tuple[tuple[str, Any], ...], drop_params: object
) -> Mapping[str, Any]:
    from litellm.utils import get_optional_params

    del drop_params  # part of the cache key only: get_optional_params reads the global itself
    values = {name: _thawed(value) for name, value in params}
    mapped: Mapping[str, Any] = get_optional_params(
        model=model, custom_llm_provider=provider, **values
    )
    return mapped


def optional_params(model: str, provider: str, **params: Any) -> dict[str, Any]:
    """LiteLLM's mapping of OpenAI-style parameters to the provider's (``max_tokens`` becomes
    ``max_completion_tokens`` for o-series models, unsupported values raise LiteLLM's
    ``UnsupportedParamsError``), exactly as ``litellm.acompletion`` computes it.

    Memoised: the mapping depends only on the model and these scalar values (and LiteLLM's
    ``drop_params`` switch, part of the key), and it costs 0.1-0.4 ms per call.
    """
    hashable = tuple(sorted((k, _frozen(v)) for k, v in params.items() if v is not None))
    mapped = _optional_params(model, provider, hashable, litellm().drop_params)
    return dict(mapped)


class _FrozenDict(tuple[tuple[str, Any], ...]):
    """A dict parameter (``stream_options``) as a hashable cache key part."""


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return _FrozenDict(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, _FrozenDict):
        return {k: _thawed(v) for k, v in value}
    return value


@cache
def chat_config(model: str, provider: str) -> Any:
    """LiteLLM's request/response transformation for a provider (``AnthropicConfig``, ...)."""
    litellm()
    from litellm.types.utils import LlmProviders
    from litellm.utils import ProviderConfigManager

    return ProviderConfigManager.get_provider_chat_config(
        model=model, provider=LlmProviders(provider)
    )


def provider_error(
    *, provider: str, model: str, status: int, text: str, headers: Mapping[str, str]
) -> BaseException:
    """The exception ``litellm.acompletion`` raises for this HTTP error answer: the provider's
    error class (``get_error_class``) run through LiteLLM's exception mapping, so that
    ``errors.translate_error`` classifies it exactly as on the LiteLLM path.
    """
    litellm()  # configured before any LiteLLM module is imported
    import httpx
    from litellm.litellm_core_utils.exception_mapping_utils import exception_type

    error: BaseException = chat_config(model, provider).get_error_class(
        error_message=text, status_code=status, headers=httpx.Headers(dict(headers))
    )
    try:
        exception_type(model=model, original_exception=error, custom_llm_provider=provider)
    except Exception as mapped:  # noqa: BLE001 - exception_type raises its mapping; returned
        return mapped
    return error


def connection_error(*, provider: str, model: str, message: str) -> BaseException:
    """LiteLLM's exception for a request that got no HTTP answer."""
    error: BaseException = litellm().APIConnectionError(
        message=message, llm_provider=provider, model=model
    )
    return error


def timeout_error(*, provider: str, model: str, message: str) -> BaseException:
    """LiteLLM's exception for a request that did not finish in time."""
    error: BaseException = litellm().Timeout(message=message, model=model, llm_provider=provider)
    return error


def usage(counts: Mapping[str, Any]) -> Any:
    """A LiteLLM ``Usage`` from an OpenAI-format usage object: what its cost functions read."""
    litellm()  # configured before any LiteLLM module is imported
    from litellm.types.utils import Usage

    return Usage(**counts)


def finish_reason(reason: str) -> str:
    """LiteLLM's normalised finish reason (``end_turn`` -> ``stop``, ``MAX_TOKENS`` ->
    ``length``).
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.litellm_core_utils.core_helpers import map_finish_reason

    return str(map_finish_reason(reason))


def anthropic_request(
    *,
    model: str,
    messages: list[dict[str, str]],
    optional: Mapping[str, Any],
    key: str,
    base_url: str | None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and body exactly as LiteLLM's Anthropic handler builds them: its
    ``AnthropicConfig`` headers and request transformation, its beta-header filtering.
    """
    module = litellm()  # configured before any LiteLLM module is imported
    from litellm.anthropic_beta_gated_fields import strip_beta_gated_request_body
    from litellm.anthropic_beta_headers_manager import update_request_with_filtered_beta
    from litellm.litellm_core_utils.url_utils import ensure_api_route

    base = (
        base_url
        or module.api_base
        or os.environ.get("ANTHROPIC_API_BASE")
        or os.environ.get("ANTHROPIC_BASE_URL")
        or "https://api.anthropic.com/v1/messages"
    )
    url = ensure_api_route(base, "v1/messages")
    config = chat_config(model, "anthropic")
    params = {name: value for name, value in optional.items() if name != "stream"}
    params["is_vertex_request"] = False
    # The transformation rewrites the messages in place; LiteLLM hands it copies too.
    copies = [dict(message) for message in messages]
    headers = config.validate_environment(
        headers={},
        model=model,
        messages=copies,
        optional_params=dict(params),
        litellm_params={},
        api_key=key,
        api_base=url,
    )
    data = config.transform_request(
        model=model, messages=copies, optional_params=params, litellm_params={}, headers=headers
    )
    headers, data = update_request_with_filtered_beta(
        headers=headers, request_data=data, provider="anthropic", api_base=url
    )
    body = dict(
        strip_beta_gated_request_body(
            data, headers, drop_params=None, model=model, provider="anthropic"
        )
    )
    if optional.get("stream"):
        body["stream"] = True
    return url, dict(headers), body


def anthropic_completion(data: dict[str, Any], status: int, headers: Mapping[str, str]) -> Any:
    """LiteLLM's ``ModelResponse`` for an Anthropic Messages answer, by its own parser."""
    litellm()  # configured before any LiteLLM module is imported
    import httpx
    from litellm.types.utils import ModelResponse

    return chat_config("claude", "anthropic").transform_parsed_response(
        completion_response=data,
        raw_response=httpx.Response(status_code=status, headers=dict(headers)),
        model_response=ModelResponse(),
    )


def anthropic_chunk_parser() -> Any:
    """LiteLLM's per-stream Anthropic event parser (``chunk_parser(event) -> chunk``)."""
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.anthropic.chat.handler import ModelResponseIterator

    return ModelResponseIterator(streaming_response=None, sync_stream=False)


def mapped_error(exc: BaseException, *, provider: str, model: str) -> BaseException:
    """``exc`` through LiteLLM's exception mapping, as its stream wrapper maps what a chunk
    parser raises.
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.litellm_core_utils.exception_mapping_utils import exception_type

    try:
        exception_type(model=model, original_exception=exc, custom_llm_provider=provider)
    except Exception as mapped:  # noqa: BLE001 - exception_type raises its mapping; returned
        return mapped
    return exc


# -- Gemini (Google AI Studio) ----------------------------------------------------------------


class GeminiCallRecord:
    """What LiteLLM's Gemini parsers read from its per-call ``Logging`` object, and nothing
    else: the mapped parameters (``check_is_function_call``, candidate processing), the LiteLLM
    parameters (thought signatures in tool-call ids) and the tokens a context-cache creation
    cost (none: the direct path sends no cached content). Slotted: a parser that starts reading
    another attribute fails loudly (tests/transport/test_direct_gemini.py) rather than reading
    nothing.
    """

    __slots__ = ("litellm_params", "optional_params", "vertex_ai_cache_creation_input_tokens")

    def __init__(self, optional: Mapping[str, Any]) -> None:
        self.optional_params = dict(optional)
        self.litellm_params: dict[str, Any] = {}
        self.vertex_ai_cache_creation_input_tokens = 0


def gemini_request(
    *,
    model: str,
    messages: list[dict[str, str]],
    optional: Mapping[str, Any],
    key: str,
    base_url: str | None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and body exactly as LiteLLM's Gemini handler builds them: its URL and key
    header (``_get_token_and_url``: ``x-goog-api-key``, ``/v1alpha`` for Gemini 3+), its
    ``validate_environment`` headers and its request-body transformation (system message to
    ``system_instruction``, ``generationConfig``, the optional default output budget).
    """
    module = litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.transformation import (
        _with_default_output_budget,
        transform_request_body,
    )
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )

    stream = bool(optional.get("stream"))
    params = {name: value for name, value in optional.items() if name != "stream"}
    base = base_url or module.api_base or os.environ.get("GEMINI_API_BASE")
    auth, url = _vertex_llm()._get_token_and_url(
        model=model,
        auth_header=None,
        gemini_api_key=key,
        vertex_project=None,
        vertex_location=None,
        vertex_credentials=None,
        stream=stream,
        custom_llm_provider="gemini",
        api_base=base,
    )
    # The transformation rewrites the messages and parameters in place; LiteLLM hands it copies.
    copies: list[Any] = [dict(message) for message in messages]
    headers = VertexGeminiConfig().validate_environment(
        api_key=auth,
        headers=None,
        model=model,
        messages=copies,
        optional_params=dict(params),
        litellm_params={},
    )
    body = transform_request_body(
        messages=copies,
        model=model,
        optional_params=params,
        custom_llm_provider="gemini",
        litellm_params={},
        cached_content=None,
    )
    body = _with_default_output_budget(body, model, "gemini", None)
    return url, dict(headers), dict(body)


@cache
def _vertex_llm() -> Any:
    """LiteLLM's Gemini handler (stateless for AI Studio calls): its URL and key placement."""
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import VertexLLM

    return VertexLLM()


def gemini_completion(
    data: dict[str, Any],
    status: int,
    headers: Mapping[str, str],
    *,
    model: str,
    optional: Mapping[str, Any],
    hops: tuple[dict[str, Any], ...] = (),
) -> Any:
    """LiteLLM's ``ModelResponse`` for a ``generateContent`` answer (with the long-decode
    continuation answers ``hops``, merged as LiteLLM merges them), by its own parser.
    """
    litellm()  # configured before any LiteLLM module is imported
    import httpx
    from litellm.llms.vertex_ai.gemini.long_decode import (
        initial_prompt_tokens_of,
        merge_hops,
        with_initial_prompt_tokens,
    )
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )
    from litellm.types.utils import ModelResponse, Usage

    answers = (data, *hops)
    merged = VertexGeminiConfig().transform_google_generate_content_to_openai_model_response(
        completion_response=merge_hops(answers),
        model_response=ModelResponse(),
        model=model,
        logging_obj=GeminiCallRecord(optional),
        raw_response=httpx.Response(status_code=status, headers=dict(headers)),
    )
    usage = getattr(merged, "usage", None)
    if not isinstance(usage, Usage):
        return merged
    marked = with_initial_prompt_tokens(usage, initial_prompt_tokens_of(answers))
    return merged if marked is usage else merged.model_copy(update={"usage": marked})


def gemini_next_hop(
    body: Mapping[str, Any], answers: tuple[dict[str, Any], ...]
) -> dict[str, Any] | None:
    """The long-decode continuation request LiteLLM sends after ``answers`` (the first answer
    and the continuations so far), or None when it sends none.
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.long_decode import (
        _unary_next_hop_token,
        continuation_cap_of,
        hop_request,
    )

    token = _unary_next_hop_token(answers, continuation_cap_of(body))
    if token is None:
        return None
    return dict(hop_request(body, token))


def gemini_chunk_parser(optional: Mapping[str, Any], body: Mapping[str, Any]) -> Any:
    """LiteLLM's per-stream Gemini parser (``chunk_parser(event) -> chunk``), planning
    long-decode continuations as LiteLLM's does for this request ``body``; the direct stream
    opens them itself (its ``_pending_hop_token``, ``_start_hop``, ``_truncated_stream_end``).
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.long_decode import continuation_cap_of
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        ModelResponseIterator,
    )

    parser = ModelResponseIterator(
        streaming_response=None, sync_stream=False, logging_obj=GeminiCallRecord(optional)
    )
    # What LiteLLM's constructor derives from its resume argument (which would also carry
    # LiteLLM's own httpx opener for the continuation).
    parser._output_cap = continuation_cap_of(body)
    return parser


def gemini_parsed(raw: bytes, status: int, headers: Mapping[str, str]) -> dict[str, Any]:
    """A ``generateContent`` answer's JSON, or the ``VertexAIError`` (422) LiteLLM's
    ``parse_body`` raises for a body it cannot read (tests/providers/test_litellm_internals.py
    checks the two agree). ``raw`` is already decompressed, which ``parse_body``'s httpx
    response would try again.
    """
    litellm()  # configured before any LiteLLM module is imported
    import json

    from litellm.llms.vertex_ai.common_utils import VertexAIError
    from litellm.types.llms.vertex_ai import GenerateContentResponseBody

    del status  # the same signature as the other parsers
    try:
        return dict(GenerateContentResponseBody(**json.loads(raw)))
    # parse_body turns any failure (not JSON, not an object) into this error, chained.
    except Exception as e:
        raise VertexAIError(
            message=(
                f"Error converting to valid response block={e}. "
                "File an issue if litellm error - https://github.com/BerriAI/litellm/issues"
            ),
            status_code=422,
            headers=dict(headers),
        ) from e


def gemini_hop_failed(error: BaseException | str) -> None:
    """LiteLLM's warning for a continuation that failed (the answer so far is returned)."""
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.long_decode import log_failed_hop

    log_failed_hop(error if isinstance(error, Exception | str) else repr(error))


def gemini_hop_request(body: Mapping[str, Any], token: str) -> dict[str, Any]:
    """The continuation request LiteLLM sends for ``token``."""
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.long_decode import hop_request

    return dict(hop_request(body, token))


def gemini_hop_errors() -> type[Exception]:
    """LiteLLM's ``VertexAIError``: what its Gemini parse and HTTP failures raise."""
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.common_utils import VertexAIError

    error: type[Exception] = VertexAIError
    return error


def stream_total_usage(
    chunks: list[Any],
    *,
    model: str,
    text: str,
    reasoning: str | None,
    only_text: bool,
    messages: list[dict[str, str]],
) -> Any:
    """The usage LiteLLM's stream wrapper reports at the end of a stream (its
    ``stream_chunk_builder``), from its parser's chunks that carried one: the provider's
    counts through ``ChunkProcessor.calculate_usage``, the total recomputed as prompt plus
    completion, and an unreported reasoning count read as 0 when every delta was only text
    (``only_text``), else as LiteLLM's token count of the ``reasoning`` text (None without).
    ``text`` and ``messages`` are counted only for a count the provider never reported.
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.litellm_core_utils.streaming_chunk_builder_utils import ChunkProcessor
    from litellm.litellm_core_utils.token_counter import token_counter

    reasoning_tokens: int | None = 0
    if not only_text:
        reasoning_tokens = (
            token_counter(text=reasoning, count_response_tokens=True) if reasoning else None
        )
    return ChunkProcessor(chunks, messages).calculate_usage(
        chunks=chunks,
        model=model,
        completion_output=text,
        messages=messages,
        reasoning_tokens=reasoning_tokens,
    )


def carries_more_than_text(delta: Any) -> bool:
    """Whether a stream delta carries anything besides text (tool calls, reasoning, provider
    fields, ...): what decides how LiteLLM's stream builder counts reasoning tokens.
    """
    from litellm.litellm_core_utils.streaming_chunk_builder_utils import _NON_TEXT_DELTA_FIELDS

    return any(delta.get(name) is not None for name in _NON_TEXT_DELTA_FIELDS)


def sse_line_splitter() -> Any:
    """LiteLLM's incremental SSE line splitter (``feed(text) -> lines``, ``flush()``), which
    its Gemini stream reads the body with.
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.custom_httpx.sse_lines import _SSELineSplitter

    return _SSELineSplitter()


def gemini_stream_error_text(raw: bytes) -> str:
    """A stream's HTTP error body as LiteLLM's Gemini stream opener words it: ``str()`` of the
    bytes, through its ``translate_exception_str``.
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )

    text: str = VertexGeminiConfig().translate_exception_str(str(raw))
    return text


def sse_data(line: str) -> str:
    """A stream line without its ``data:`` prefix, as LiteLLM's Gemini parser strips it."""
    litellm()  # configured before any LiteLLM module is imported
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    data: str | None = CustomStreamWrapper.strip_sse_data_from_chunk(line)
    return data or ""


def gemini_parser_is_fresh(parser: Any) -> bool:
    """Whether LiteLLM's stream parser is on the first response of its stream with nothing that
    changes how a plain text event reads: no continuation answered yet (no usage, grounding or
    answer offsets to add), no fragments accumulating, no tool call seen (which would turn a
    ``STOP`` into ``tool_calls``).
    """
    return bool(
        parser.chunk_type == "valid_json"
        and not parser._usage_offset
        and not parser._grounding_offset
        and not parser._answer_offset
        and not parser.has_seen_tool_calls
        and not parser.is_function_call
    )


def gemini_took_plain_event(parser: Any, event: dict[str, Any]) -> dict[str, Any]:
    """The state LiteLLM's ``chunk_parser`` keeps for a plain text event (the continuation
    bookkeeping: this response's usage and answer bytes, no unanswered continuation), and the
    event as it reads it. Nothing else of its per-event work depends on such an event.
    """
    parser.sent_first_chunk = True
    parser._unanswered_hop_token = None
    processed: dict[str, Any] = parser._with_answer_offset(parser._with_usage_offset(event))
    return processed


def gemini_usage_chunk(parser: Any, event: dict[str, Any]) -> Any:
    """The chunk (only its id, model and usage) LiteLLM's ``chunk_parser`` makes of a plain
    text event with ``usageMetadata`` read on the first response of its stream: its
    ``calculate_usage`` and grounding counters (no grounding), unmarked (no continuation yet).
    """
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
        _cache_creation_tokens,
        _served_model_name,
    )
    from litellm.types.utils import ModelResponseStream

    usage = VertexGeminiConfig.calculate_usage(
        completion_response=event, cache_creation_tokens=_cache_creation_tokens(parser.logging_obj)
    )
    VertexGeminiConfig.set_grounding_usage_counters(usage, [])
    chunk = ModelResponseStream(
        choices=[], id=event.get("responseId"), model=_served_model_name(event.get("modelVersion"))
    )
    chunk.usage = usage
    return chunk


def gemini_usage_supersedes(last: Any, earlier: list[dict[str, Any]]) -> bool:
    """Whether the usage chunk ``last`` decides every figure ``ChunkProcessor.calculate_usage``
    would take from the plain events ``earlier`` (before it in the stream), so that their
    usage need not be computed. Its totalling keeps, per figure, the last chunk that reported
    it: a positive prompt and completion count, completion details, a cache-read count (the
    prompt side being positive). Prompt details are always present on Gemini usage, the
    cache-creation, cost, server-tool and pricing fields never are, and the grounding counters
    come from the same (empty) grounding on every plain event, so ``last`` decides those too.
    """
    if not (last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0):
        return False
    if last.usage.completion_tokens_details is None:
        return False
    if last.usage.cache_read_input_tokens is not None:
        return True
    return all(event["usageMetadata"].get("cachedContentTokenCount") is None for event in earlier)


@cache
def gemini_served_model_name() -> Any:
    """LiteLLM's ``_served_model_name``: the model it reports for an event's ``modelVersion``."""
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        _served_model_name,
    )

    return _served_model_name


def gemini_finish_reason(finish: str | None) -> str:
    """The finish reason LiteLLM's Gemini stream gives a text chunk whose candidate has
    ``finishReason`` ``finish`` (and no function or tool call).
    """
    reason: str = _gemini_config().check_finish_reason(None, finish)
    return reason


@cache
def _gemini_config() -> Any:
    litellm()  # configured before any LiteLLM module is imported
    from litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini import (
        VertexGeminiConfig,
    )

    return VertexGeminiConfig
