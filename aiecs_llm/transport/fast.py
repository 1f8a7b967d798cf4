"""The fast transport: one generic driver of LiteLLM's provider configuration classes (the
``BaseConfig`` interface LiteLLM's own HTTP handler drives), over one shared HTTP client per
client and event loop, without ``litellm.acompletion``'s per-call machinery (its logging
threads, per-call pricing, the openai SDK's objects, the stream wrapper).

What comes out is LiteLLM's: the request its config builds (``provider_request``), the
``ModelResponse`` its ``transform_response`` reads, the ``ModelResponseStream`` chunks its
stream parser reads, its provider exception class (``get_error_class``) mapped by its
``exception_type``, exactly as ``acompletion`` maps it. So the client reads either path's
answer with the same code and gets the same ``LLMResponse`` or error.

It carries a call when the provider has a ``Route`` (OpenAI, its o-series and GPT-5 configs;
Anthropic), every parameter is one ``get_optional_params`` maps (``provider_request``), and
nothing process-wide asks for ``acompletion``'s extra work: LiteLLM callbacks
(``litellm.callbacks``, ``success_callback``, ``failure_callback``, ``input_callback``: they
run only inside ``acompletion``), LiteLLM's response cache (``litellm.cache``), global extra
headers, a proxy-auth hook, a Responses-API bridge. Anything else goes through
``acompletion``. ``LLM_FAST_TRANSPORT=0`` (or the older
``LLM_DIRECT_TRANSPORT=0``) sends every call through ``acompletion``.

The HTTP client is LiteLLM's ``AsyncHTTPHandler``, so LiteLLM's TLS settings
(``litellm.ssl_verify``, ``SSL_VERIFY``, ``SSL_CERT_FILE``, ``litellm.ssl_certificate``, ...)
and its transport apply; redirects are not followed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import uuid4
from weakref import WeakKeyDictionary

from aiecs_llm.providers import engine as _litellm
from aiecs_llm.transport import provider_request
from aiecs_llm.transport.base import ChunkStream, ModelResponse
from aiecs_llm.transport.routes import ROUTES

if TYPE_CHECKING:
    import httpx

    from aiecs_llm.transport.call import PreparedCall
    from aiecs_llm.transport.provider_request import ProviderRequest

ENABLE_ENV = "LLM_FAST_TRANSPORT"
LEGACY_ENABLE_ENV = "LLM_DIRECT_TRANSPORT"
"""The switch's earlier name, still read when ``LLM_FAST_TRANSPORT`` is not set."""
_OFF = ("0", "false", "no", "off")
_RESPONSE_CACHE_HOOK = "cache"


def enabled() -> bool:
    """Whether clients made now use the fast transport (on unless switched off)."""
    value = os.environ.get(ENABLE_ENV, os.environ.get(LEGACY_ENABLE_ENV, "1"))
    return value.strip().lower() not in _OFF


class FastTransport:
    """Sends the calls it ``handles``; LiteLLM loads on the first one."""

    def __init__(self) -> None:
        # Per event loop (an HTTP client's connections belong to one), and not keeping a
        # finished loop alive.
        self._handlers: WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = WeakKeyDictionary()
        self._closed = False
        self.requests_sent = 0
        """Requests this transport sent (an answer or not), over the client's life."""

    def handles(self, call: PreparedCall) -> bool:
        """Whether the call can be sent here with the same outcome as through ``acompletion``."""
        params = call.params
        return (
            call.litellm_provider in ROUTES
            and params.get("api_key") is not None
            and all(
                name in provider_request.CARRIED_PARAMETERS
                or name in provider_request.IGNORED_PARAMETERS
                for name in params
            )
            and not _acompletion_required(call)
        )

    async def send(self, call: PreparedCall, *, timeout: float) -> ModelResponse:
        """LiteLLM's ``ModelResponse`` for the answer, read by the config."""
        request = await self._request(call)
        with _as_litellm_raises(request):
            response = await self._post(request, timeout)
            try:
                await response.aread()
            finally:
                await response.aclose()
            from litellm.types.utils import ModelResponse as LiteLLMModelResponse

            return request.config.transform_response(
                model=request.model,
                raw_response=response,
                model_response=LiteLLMModelResponse(),
                logging_obj=_call_record(request),
                request_data=request.data,
                messages=request.messages,
                optional_params=request.optional_params,
                litellm_params=request.litellm_params,
                encoding=None,
                api_key=None,
                json_mode=request.json_mode,
            )

    async def stream(self, call: PreparedCall, *, timeout: float) -> ChunkStream:
        """The answer's chunks, read by the provider's stream parser."""
        from litellm.litellm_core_utils.core_helpers import map_finish_reason

        from aiecs_llm.transport.chunks import ConfigChunkStream

        request = await self._request(call)
        route = request.route
        with _as_litellm_raises(request):
            response = await self._post(request, timeout)
            try:
                parser = _stream_parser(request)
            except BaseException:
                await response.aclose()
                raise
        return ConfigChunkStream(
            response,
            parser,
            stream_end=route.stream_end,
            map_finish_reason=map_finish_reason,
            mapped=lambda exc: _mapped(exc, request),
            messages=call.params["messages"],
            stream_error=route.stream_error,
            error_class=lambda text, status: request.config.get_error_class(
                error_message=text, status_code=status, headers={}
            ),
        )

    async def close(self) -> None:
        """Close the HTTP clients opened so far; later sends fail as connection errors."""
        self._closed = True
        handlers, self._handlers = list(self._handlers.values()), WeakKeyDictionary()
        for handler in handlers:
            await handler.close()

    async def _request(self, call: PreparedCall) -> ProviderRequest:
        try:
            return await provider_request.build(call)
        # What the mapping and the config refuse (UnsupportedParamsError, a bad value) leaves
        # as acompletion raises it: through LiteLLM's exception mapping.
        except Exception as exc:
            raise _mapped_for(exc, call.model, call.litellm_provider) from exc

    async def _post(self, request: ProviderRequest, timeout: float) -> httpx.Response:
        """The response, its body not read yet. An HTTP error status raises the provider's
        exception (its config's ``get_error_class``) with the body as its message; so does a
        redirect, which is not followed (the key would go wherever it points).
        """
        import httpx

        if self._closed:  # a retry of a call that was in flight when the client was closed
            raise httpx.ConnectError("the client was closed")
        client: httpx.AsyncClient = self._client()
        built = client.build_request(
            "POST", request.url, headers=request.headers, content=request.body, timeout=timeout
        )
        self.requests_sent += 1
        response: httpx.Response = await client.send(built, stream=True)
        if response.is_success:
            return response
        try:
            await response.aread()
        finally:
            await response.aclose()
        provider_error: BaseException = request.config.get_error_class(
            error_message=response.text,
            status_code=response.status_code,
            headers=response.headers,
        )
        raise provider_error

    def _client(self) -> Any:
        """The httpx client of this event loop: LiteLLM's, with its TLS settings and transport."""
        loop = asyncio.get_running_loop()
        handler = self._handlers.get(loop)
        if handler is None:
            handler = _litellm.http_handler()
            self._handlers[loop] = handler
        return handler.client


def _stream_parser(request: ProviderRequest) -> Any:
    """The parser of this request's stream events (``chunk_parser(event) -> chunk``)."""
    route = request.route
    if route.stream_parser is not None:
        return route.stream_parser(request.stream_setup())
    return request.config.get_model_response_iterator_for_request(
        streaming_response=None,
        sync_stream=False,
        json_mode=request.json_mode,
        optional_params=request.optional_params,
        logging_obj=_call_record(request),
    )


def _acompletion_required(call: PreparedCall) -> bool:
    """Whether something process-wide makes ``acompletion`` do more than this transport does."""
    litellm = _litellm.litellm()
    callbacks = [*litellm.logging_callback_manager.get_all_callbacks(), *litellm.input_callback]
    # "cache" is the hook of LiteLLM's own response cache, which acts only with litellm.cache
    # set; merely importing LiteLLM's Vertex context-caching module (any Gemini call does)
    # registers it.
    if any(callback != _RESPONSE_CACHE_HOOK for callback in callbacks):
        return True  # the user's callbacks run only inside acompletion
    if litellm.cache is not None:
        return True  # a response cache LiteLLM keeps for acompletion's calls
    if litellm.headers or litellm.proxy_auth is not None:
        return True
    return _bridged_to_responses_api(call)


def _bridged_to_responses_api(call: PreparedCall) -> bool:
    """Whether ``acompletion`` sends this call to the Responses API instead (models whose map
    entry says so, GPT-5.4+ with function tools, ``litellm.route_all_chat_openai_to_responses``).
    """
    tools = call.params.get("tools")
    api_base = call.params.get("api_base")
    if tools is None:  # then it depends on nothing that changes from call to call
        everything = _litellm.litellm().route_all_chat_openai_to_responses
        return _bridged(call.model, call.litellm_provider, api_base, everything)
    return _bridged.__wrapped__(call.model, call.litellm_provider, api_base, None, tools)


@lru_cache(maxsize=256)
def _bridged(
    model: str, provider: str, api_base: str | None, everything: object, tools: Any = None
) -> bool:
    del everything  # part of the cache key only: the bridge check reads the switch itself
    from litellm.responses.bridge_check import responses_api_bridge_check

    model_info, _model = responses_api_bridge_check(
        model=model, custom_llm_provider=provider, tools=tools, api_base=api_base
    )
    return bool(model_info.get("mode") == "responses")


@contextmanager
def _as_litellm_raises(request: ProviderRequest) -> Iterator[None]:
    """Whatever fails on the way leaves as ``acompletion``'s exception for it."""
    import httpx

    try:
        yield
    except httpx.HTTPError as exc:
        # As LiteLLM's HTTP handler reports a request that got no answer: the provider's
        # error class with a timeout's 408 or a 500, through the mapping.
        status = 408 if isinstance(exc, httpx.TimeoutException) else 500
        provider_error: BaseException = request.config.get_error_class(
            error_message=f"{type(exc).__name__}: {exc}", status_code=status, headers={}
        )
        provider_error.__cause__ = exc
        raise _mapped(provider_error, request) from provider_error
    except Exception as exc:  # the provider's exception, or what reading the answer raised
        raise _mapped(exc, request) from exc


def _mapped(exc: BaseException, request: ProviderRequest) -> BaseException:
    return _mapped_for(exc, request.model, request.provider)


def _mapped_for(exc: BaseException, model: str, provider: str) -> BaseException:
    """``exc`` through LiteLLM's ``exception_type``, as ``acompletion`` maps what it raises."""
    try:
        _litellm.litellm().exception_type(
            model=model, original_exception=exc, custom_llm_provider=provider
        )
    except Exception as mapped:  # noqa: BLE001 - exception_type raises its mapping; returned
        return mapped
    return exc


def _call_record(request: ProviderRequest) -> Any:
    """The ``Logging`` object LiteLLM's parsers write their call details to (a real one: they
    read and write its fields).
    """
    from litellm.litellm_core_utils.litellm_logging import Logging

    return Logging(
        model=request.model,
        messages=request.messages,
        stream=request.stream,
        call_type="acompletion",
        start_time=datetime.now(),
        litellm_call_id=str(uuid4()),
        function_id="aiecs_llm",
    )
