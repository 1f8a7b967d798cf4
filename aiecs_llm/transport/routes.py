"""What ``litellm.acompletion`` does for a provider around its configuration class, for each
provider the fast transport carries: one row of data per provider, the rest is generic.

LiteLLM sends most providers through one handler (``BaseLLMHTTPHandler``) that drives nothing
but the provider's config. OpenAI and Anthropic have handlers of their own (the openai SDK;
``AnthropicChatCompletion``), and these rows hold the few steps those take that the config
does not: where the API route is appended, Anthropic's beta-header filtering, which stream
parser reads the events. Gemini is not here: its config cannot build a request
(``transform_request`` raises ``NotImplementedError``), so it goes through ``acompletion``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiecs_llm.providers import engine as _litellm

Headers = dict[str, Any]
Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamSetup:
    """What a stream parser may need to know about its request."""

    config: Any
    json_mode: bool
    optional_params: Mapping[str, Any]
    litellm_params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Route:
    """How LiteLLM's handler for one provider completes what the provider's config builds."""

    api_route: str | None = None
    """The path LiteLLM appends to the API base when the config's ``get_complete_url`` does
    not (``ensure_api_route``: added unless the base already ends with it)."""
    defaults: Callable[[], Mapping[str, Any]] | None = None
    """Process-wide parameter defaults LiteLLM merges into the mapped parameters (a value the
    call sets wins)."""
    finish_request: Callable[[Headers, Body, str, Mapping[str, Any], str], tuple[Headers, Body]] | (
        None
    ) = None
    """The handler's last look at the request: (headers, body, url, litellm_params, model)."""
    stream_parser: Callable[[StreamSetup], Any] | None = None
    """The stream event parser (``chunk_parser(event) -> chunk``), when the config's
    ``get_model_response_iterator_for_request`` gives none."""
    stream_end: Callable[[Any], Any] | None = None
    """A last chunk the parser holds back until the stream ends (or None)."""
    stream_error: Callable[[Mapping[str, Any]], bool] | None = None
    """Whether a stream event is an error report that the handler raises before the parser
    sees it; its whole JSON becomes the provider exception's message, as an HTTP error body."""


def _openai_defaults() -> Mapping[str, Any]:
    # litellm.OpenAIConfig(temperature=...) sets process-wide defaults; acompletion's OpenAI
    # path merges them in (main.py, "LOAD CONFIG").
    config: Mapping[str, Any] = _litellm.litellm().OpenAIConfig.get_config()
    return config


def _openai_stream_error(event: Mapping[str, Any]) -> bool:
    # acompletion's OpenAI path reads streams with the openai SDK, which raises on any event
    # whose "error" is set, keeping the error object: its message and code reach the caller.
    # LiteLLM's own OpenAI parser keeps only the message.
    return bool(event.get("error"))


def _anthropic_finish_request(
    headers: Headers, body: Body, url: str, litellm_params: Mapping[str, Any], model: str
) -> tuple[Headers, Body]:
    # AnthropicChatCompletion.completion: beta headers the endpoint does not take are dropped,
    # then the body fields those betas gate.
    from litellm.anthropic_beta_gated_fields import strip_beta_gated_request_body
    from litellm.anthropic_beta_headers_manager import update_request_with_filtered_beta

    headers, filtered = update_request_with_filtered_beta(
        headers=headers, request_data=body, provider="anthropic", api_base=url
    )
    stripped = strip_beta_gated_request_body(
        filtered,
        headers,
        drop_params=litellm_params.get("drop_params"),
        model=model,
        provider="anthropic",
    )
    return dict(headers), dict(stripped)


def _anthropic_stream_parser(setup: StreamSetup) -> Any:
    # The arguments AnthropicChatCompletion.acompletion_stream_function gives its parser.
    from litellm.llms.anthropic.chat.handler import ModelResponseIterator
    from litellm.llms.anthropic.chat.transformation import (
        ANTHROPIC_TOOL_NAME_REVERSE_MAP_KEY,
        JsonModeRequest,
    )

    optional = setup.optional_params
    schema = JsonModeRequest.model_validate(optional).tool_schema() if setup.json_mode else None
    return ModelResponseIterator(
        streaming_response=None,
        sync_stream=False,
        json_mode=setup.json_mode,
        speed=optional.get("speed"),
        tool_name_reverse_map=setup.litellm_params.get(ANTHROPIC_TOOL_NAME_REVERSE_MAP_KEY),
        response_format_schema=schema,
    )


def _anthropic_stream_end(parser: Any) -> Any:
    # Text the parser held back (a response_format answer being unwrapped) comes out last.
    return parser.cut_stream_chunk()


ROUTES: dict[str, Route] = {
    "openai": Route(defaults=_openai_defaults, stream_error=_openai_stream_error),
    "anthropic": Route(
        api_route="v1/messages",
        finish_request=_anthropic_finish_request,
        stream_parser=_anthropic_stream_parser,
        stream_end=_anthropic_stream_end,
    ),
}
"""LiteLLM provider -> its route; a provider missing here goes through ``acompletion``."""
