"""A call's HTTP request, built by the provider's LiteLLM configuration class in the order
LiteLLM's own HTTP handler (``BaseLLMHTTPHandler.completion``) drives it: the parameters mapped
by ``litellm.get_optional_params``, then the config's ``validate_environment`` (headers),
``get_complete_url``, ``async_transform_request`` (body), ``transform_extra_body`` and
``sign_request``, then the provider's ``Route`` for what its handler adds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from aiecs_llm.config.secrets import Secret
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.transport.routes import ROUTES, Route, StreamSetup

if TYPE_CHECKING:
    from aiecs_llm.transport.call import PreparedCall

MAPPED_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "response_format",
        "seed",
        "tools",
        "tool_choice",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
        "stream",
        "stream_options",
    }
)
"""OpenAI parameters ``litellm.get_optional_params`` maps for every provider (to the provider's
spelling, or to LiteLLM's ``UnsupportedParamsError``) without anything else of
``litellm.completion`` taking part. Parameters ``completion`` resolves itself first
(``reasoning_effort``, ``thinking``, ``web_search_options``, ``functions``, audio) and provider
specific keywords are not here: calls with them go through ``acompletion``."""
CARRIED_PARAMETERS = MAPPED_PARAMETERS | {"model", "messages", "api_key", "api_base"}
"""Everything a call the fast transport sends may contain. ``num_retries`` and ``max_retries``
(always 0: there is one retry layer, ours) are dropped."""
IGNORED_PARAMETERS = frozenset({"num_retries", "max_retries"})
_ANTHROPIC_URL_SUFFIX_OFF = "LITELLM_ANTHROPIC_DISABLE_URL_SUFFIX"


@dataclass(slots=True)
class ProviderRequest:
    """One request, ready to send, and what reading its answer needs."""

    url: str
    headers: dict[str, str] = field(repr=False)
    """The config's headers; values holding the key are ``Secret``."""
    body: bytes = field(repr=False)
    stream: bool
    model: str
    provider: str
    config: Any
    route: Route
    messages: list[Any] = field(repr=False)
    data: dict[str, Any] = field(repr=False)
    """The body before serialisation (``transform_response`` reads it)."""
    optional_params: dict[str, Any] = field(repr=False)
    litellm_params: dict[str, Any] = field(repr=False)
    json_mode: bool

    def stream_setup(self) -> StreamSetup:
        """What the stream parser is built from."""
        return StreamSetup(
            config=self.config,
            json_mode=self.json_mode,
            optional_params=self.optional_params,
            litellm_params=self.litellm_params,
        )


@cache
def chat_config(model: str, provider: str) -> Any:
    """The provider's configuration class for ``model`` (stateless; LiteLLM shares most)."""
    litellm = _litellm.litellm()
    return litellm.ProviderConfigManager.get_provider_chat_config(
        model=model, provider=litellm.LlmProviders(provider)
    )


async def build(call: PreparedCall) -> ProviderRequest:
    """The request ``litellm.acompletion`` would send for ``call`` (``handles`` said yes)."""
    litellm = _litellm.litellm()
    params = call.params
    model, provider = call.model, call.litellm_provider
    route = ROUTES[provider]
    config = chat_config(model, provider)
    optional = mapped_parameters(model, provider, params)
    for name, value in (route.defaults() if route.defaults else {}).items():
        optional.setdefault(name, value)
    # As LiteLLM's handlers do: the stream flag is sent only when set, the JSON-mode flag and
    # extra_body are instructions to LiteLLM, not parameters of the provider.
    stream = bool(optional.pop("stream", False))
    stream_options = optional.pop("stream_options", None)
    json_mode = bool(optional.pop("json_mode", False))
    extra_body = optional.pop("extra_body", None)
    key: str = params["api_key"]
    api_base = _api_base(config, route, params.get("api_base") or litellm.api_base)
    from litellm.litellm_core_utils.get_litellm_params import get_litellm_params

    # LiteLLM's per-call settings as litellm.completion builds them for a call that sets none
    # of its own; a new dict per call (Anthropic's config writes its tool-name map into it).
    litellm_params: dict[str, Any] = get_litellm_params(
        custom_llm_provider=provider, api_base=api_base
    )
    # The config rewrites messages in place; LiteLLM's handlers give it copies.
    messages: list[Any] = [dict(message) for message in params["messages"]]
    headers = config.validate_environment(
        headers={},
        model=model,
        messages=messages,
        optional_params=optional,
        litellm_params=litellm_params,
        api_key=key,
        api_base=api_base,
    )
    url: str = config.get_complete_url(
        api_base=api_base,
        api_key=key,
        model=model,
        optional_params=optional,
        litellm_params=litellm_params,
        stream=stream,
    )
    data: dict[str, Any] = await config.async_transform_request(
        model=model,
        messages=messages,
        optional_params=optional,
        litellm_params=litellm_params,
        headers=headers,
    )
    if extra_body:
        extra = config.transform_extra_body(
            extra_body=extra_body, request=data, model=model, litellm_params=litellm_params
        )
        data = {**data, **extra}
    headers, signed_body = config.sign_request(
        headers=headers,
        optional_params=optional,
        request_data=data,
        api_base=url,
        api_key=key,
        model=model,
        stream=stream,
        fake_stream=False,
    )
    if route.finish_request is not None:
        headers, data = route.finish_request(headers, data, url, litellm_params, model)
    if stream:
        if config.supports_stream_param_in_request_body:
            data["stream"] = True
        if stream_options is not None:
            data["stream_options"] = stream_options
    body = signed_body if signed_body is not None else json.dumps(data).encode()
    return ProviderRequest(
        url=url,
        headers=_with_secrets(headers, key),
        body=body,
        stream=stream,
        model=model,
        provider=provider,
        config=config,
        route=route,
        messages=messages,
        data=data,
        optional_params=optional,
        litellm_params=litellm_params,
        json_mode=json_mode,
    )


def _api_base(config: Any, route: Route, given: str | None) -> str:
    # LiteLLM's order: the call's api_base, litellm.api_base, then the provider's environment
    # variables and default endpoint (the config's get_api_base reads those).
    base: str = given or config.get_api_base(None)
    if route.api_route is not None and not _flag(_ANTHROPIC_URL_SUFFIX_OFF):
        from litellm.litellm_core_utils.url_utils import ensure_api_route

        base = ensure_api_route(base, route.api_route)
    return base


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _with_secrets(headers: Mapping[str, Any], key: str) -> dict[str, str]:
    # The key travels in a header (Authorization, x-api-key); a header rendered in a traceback
    # or a repr shows '***' instead.
    return {
        str(name): Secret(value) if key and key in str(value) else str(value)
        for name, value in headers.items()
    }


# -- the parameter mapping, memoised -------------------------------------------------------------


def mapped_parameters(model: str, provider: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``litellm.get_optional_params`` for the call's OpenAI parameters, exactly as
    ``litellm.completion`` computes them (``max_tokens`` -> ``max_completion_tokens`` for the
    o-series, ``stop`` -> ``stop_sequences`` for Anthropic, unsupported values raising
    ``UnsupportedParamsError``), as a fresh dict the config may change.

    Memoised: the mapping depends only on the model, these values and LiteLLM's
    ``drop_params`` switch (part of the key), and it costs 0.1-0.4 ms per call.
    """
    chosen = tuple(
        sorted(
            (name, _frozen(value))
            for name, value in params.items()
            if name in MAPPED_PARAMETERS and value is not None
        )
    )
    try:
        hash(chosen)
    except TypeError:  # a value that cannot be a cache key (a set, say): mapped uncached
        mapped = _mapped.__wrapped__(model, provider, chosen, None)
    else:
        mapped = _mapped(model, provider, chosen, _litellm.litellm().drop_params)
    return {name: _thawed(value) for name, value in mapped}


@lru_cache(maxsize=1024)
def _mapped(
    model: str, provider: str, chosen: tuple[tuple[str, Any], ...], drop_params: object
) -> tuple[tuple[str, Any], ...]:
    del drop_params  # part of the cache key only: get_optional_params reads the switch itself
    values = {name: _thawed(value) for name, value in chosen}
    mapped: Mapping[str, Any] = _litellm.litellm().get_optional_params(
        model=model, custom_llm_provider=provider, **values
    )
    return tuple((name, _frozen(value)) for name, value in mapped.items())


class _FrozenDict(tuple[tuple[str, Any], ...]):
    """A dict value (``stream_options``, a tool) as a hashable cache-key part."""


class _FrozenList(tuple[Any, ...]):
    """A list value (``stop``, ``tools``) as a hashable cache-key part."""


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return _FrozenDict((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, list):
        return _FrozenList(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    # Every call gets new dicts and lists: the config may change what it is given.
    if isinstance(value, _FrozenDict):
        return {k: _thawed(v) for k, v in value}
    if isinstance(value, _FrozenList):
        return [_thawed(v) for v in value]
    return value
