"""``LiteLLMClient``: the concrete client for any LiteLLM model string, and the only place that
sends a request through LiteLLM.

Every call, plain or streamed, goes through ``_send``: validation before any HTTP, our retry layer
around LiteLLM (whose own retries are off), one exception translation, one usage and cost
reading, one log event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

from pydantic import SecretStr
from typing_extensions import override

from aiecs_llm import _events, _litellm
from aiecs_llm.calls import PreparedCall, StreamReading, to_response
from aiecs_llm.client import BaseLLMClient
from aiecs_llm.errors import (
    ConfigurationError,
    LLMClientError,
    ModelNotFoundError,
    StreamInterruptedError,
)
from aiecs_llm.provider_spec import ProviderSpec
from aiecs_llm.retry import call_with_retries
from aiecs_llm.settings import LLMSettings
from aiecs_llm.streaming import TextStream
from aiecs_llm.types import LLMMessage, LLMResponse
from aiecs_llm.validation import check_max_tokens, check_messages, check_seconds, check_temperature


class LiteLLMClient(BaseLLMClient):
    """A client for any model LiteLLM supports, named by its LiteLLM model string
    (``anthropic/claude-sonnet-4-5``, ``gemini/gemini-2.5-flash``, ``openai/gpt-4o-mini``, or
    ``openai/<model>`` with ``base_url`` for a local OpenAI-compatible server).

    Args:
        model: default model string for calls that do not name one; falls back to
            ``LLM_DEFAULT_MODEL`` / the config file.
        api_key: key for the provider of ``model`` (default: from the environment or config).
        base_url: endpoint for the provider of ``model``, e.g. a proxy or a local server.
        timeout: seconds allowed per call, retries included (default ``LLM_TIMEOUT``, 60).
        max_retries: retries of rate limits and provider outages (default 2).
        settings: configuration; ``LLMSettings.load()`` when omitted.
        log_content: include prompts and answers in log events (off: they may be private).
        **default_params: further LiteLLM parameters sent with every call (``top_p``, ...).

    """

    spec: ClassVar[ProviderSpec | None] = None

    def __init__(
        self,
        model: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: LLMSettings | None = None,
        log_content: bool = False,
        **default_params: Any,
    ) -> None:
        self.settings = settings if settings is not None else LLMSettings.load()
        defaults = self.settings.defaults
        self.default_model = model
        self.timeout = (
            check_seconds(timeout, "timeout") if timeout is not None else defaults.timeout
        )
        if max_retries is not None and (isinstance(max_retries, bool) or max_retries < 0):
            raise ConfigurationError("max_retries must be a whole number >= 0")
        self.max_retries = defaults.max_retries if max_retries is None else max_retries
        self.log_content = log_content
        self._api_key = SecretStr(api_key) if api_key else None
        self._base_url = base_url
        self._default_params = default_params
        self._http_clients: dict[tuple[str, str | None, str | None], Any] = {}
        self._closed = False
        own = self.spec or _registered_spec(_prefix_of(model))
        self._own_litellm_provider = own.litellm_provider if own else _prefix_of(model)
        super().__init__(own.name if own else (self._own_litellm_provider or "litellm"))
        if self.spec is not None:
            self._credentials(self.spec, self.spec.litellm_provider)  # fail fast on a missing key

    @override
    def __repr__(self) -> str:
        key = "set" if self._api_key else "from config"
        return (
            f"{type(self).__name__}(provider={self.provider_name!r}, "
            f"model={self.default_model!r}, api_key={key}, closed={self._closed})"
        )

    @override
    async def generate_text(
        self,
        messages: Sequence[LLMMessage],
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """Send the conversation and return the whole answer.

        ``temperature`` defaults to ``LLM_DEFAULT_TEMPERATURE`` (0.7) and is left out for models
        that accept none (o-series); ``max_tokens`` defaults to ``LLM_MAX_TOKENS``. Extra keyword
        arguments go to LiteLLM unchanged.
        """
        call = self._prepare(messages, model, temperature, max_tokens, kwargs)
        try:
            raw = await call_with_retries(
                lambda: self._send(call),
                max_retries=call.max_retries,
                deadline=call.deadline,
                provider=call.provider,
                model=call.model,
            )
            response = to_response(raw, call)
        except LLMClientError as error:
            self._log_failure(error, call, stream=False)
            raise
        _events.request_completed(response, stream=False, messages=self._logged(call))
        return response

    @override
    def stream_text(
        self,
        messages: Sequence[LLMMessage],
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> TextStream:
        """Send the conversation and yield the answer's text as it arrives.

        Usage is always requested, so after the last chunk ``stream.response`` carries tokens,
        cost, time to first chunk and total time. Invalid arguments raise here, before any
        HTTP; a stream that breaks after it started raises ``StreamInterruptedError``.
        """
        call = self._prepare(messages, model, temperature, max_tokens, kwargs)
        call.params["stream"] = True
        call.params["stream_options"] = {"include_usage": True}
        return TextStream(lambda stream: self._stream_chunks(call, stream))

    @override
    async def close(self) -> None:
        """Close the HTTP clients this client opened; idempotent."""
        if self._closed:
            return
        self._closed = True
        clients, self._http_clients = list(self._http_clients.values()), {}
        for client in clients:
            closer = getattr(client, "close", None) or client.aclose
            await closer()

    def _prepare(
        self,
        messages: Sequence[LLMMessage],
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        extra: Mapping[str, Any],
    ) -> PreparedCall:
        if self._closed:
            raise ConfigurationError(f"{type(self).__name__} is closed")
        conversation = check_messages(messages)
        litellm_model = self._resolve_model(model)
        model_name, litellm_provider = self._provider_of(litellm_model)
        spec = _registered_spec(litellm_provider)
        api_key, base_url = self._credentials(spec, litellm_provider)
        defaults = self.settings.defaults
        params: dict[str, Any] = {
            "model": litellm_model,
            "messages": [message.model_dump() for message in conversation],
            # One retry layer only: ours.
            "num_retries": 0,
            "max_retries": 0,
            **self._default_params,
        }
        if temperature is not None:
            params["temperature"] = check_temperature(temperature)
        elif _accepts_temperature(litellm_model, litellm_provider):
            params["temperature"] = defaults.temperature
        tokens = max_tokens if max_tokens is not None else defaults.max_tokens
        if tokens is not None:
            params["max_tokens"] = check_max_tokens(tokens, litellm_model, litellm_provider)
        if api_key is not None:
            params["api_key"] = api_key
        if base_url is not None:
            params["api_base"] = base_url
        timeout = check_seconds(extra.get("timeout", self.timeout), "timeout")
        max_retries = extra.get("max_retries", self.max_retries)
        params.update({k: v for k, v in extra.items() if k not in ("timeout", "max_retries")})
        return PreparedCall(
            params=params,
            model=model_name,
            provider=spec.name if spec else litellm_provider,
            litellm_provider=litellm_provider,
            secrets=tuple(s for s in (api_key, self._raw_key()) if s),
            messages=conversation,
            http_client=self._http_client(spec, api_key, base_url),
            timeout=timeout,
            max_retries=max_retries,
            overrides=self.settings.costs,
            usage_expected=spec is not None,
        )

    async def _send(self, call: PreparedCall) -> Any:
        remaining = call.deadline - time.monotonic()
        if remaining <= 0:
            raise call.fail(TimeoutError(f"no time left of the {call.timeout:g}s call timeout"))
        params = dict(call.params, timeout=remaining)
        if call.http_client is not None:
            params["client"] = call.http_client
        try:
            return await _litellm.litellm().acompletion(**params)
        except Exception as exc:  # the boundary: every failure leaves as a mapped error
            raise call.fail(exc) from exc

    async def _stream_chunks(
        self, call: PreparedCall, stream: TextStream
    ) -> AsyncGenerator[str, None]:
        async def open_stream() -> tuple[Any, StreamReading, str | None]:
            # Until the caller has seen text, nothing is lost by starting again, so the attempt
            # (and with it retries and fallbacks) lasts until the first text chunk. Provider
            # errors often arrive only there, not with the HTTP response headers.
            raw = await self._send(call)
            reading = StreamReading(call)
            try:
                while (chunk := await anext(raw, None)) is not None:
                    if text := reading.add(chunk):
                        return raw, reading, text
                reading.finish()
            except Exception as exc:  # the boundary, as in _send
                await _close_quietly(raw)
                raise call.fail(exc) from exc
            return raw, reading, None

        try:
            raw, reading, text = await call_with_retries(
                open_stream,
                max_retries=call.max_retries,
                deadline=call.deadline,
                provider=call.provider,
                model=call.model,
            )
        except LLMClientError as error:
            self._log_failure(error, call, stream=True)
            raise
        try:
            while text is not None:
                yield text
                text = None
                while text is None and (chunk := await anext(raw, None)) is not None:
                    text = reading.add(chunk) or None
            response = reading.finish()
        except Exception as exc:
            interrupted = StreamInterruptedError(
                f"the stream broke after {len(reading.text)} characters: {call.fail(exc).message}",
                partial_text=reading.text,
                provider=call.provider,
                model=call.model,
                status_code=getattr(exc, "status_code", None),
            )
            self._log_failure(interrupted, call, stream=True)
            raise interrupted from exc
        finally:
            await _close_quietly(raw)
        stream._finish(response)
        _events.request_completed(response, stream=True, messages=self._logged(call))

    def _resolve_model(self, model: str | None) -> str:
        chosen = model or self.default_model or self.settings.defaults.model
        if chosen is None and self.spec is not None:
            chosen = self.spec.default_model
        if chosen is None or not chosen.strip():
            raise ConfigurationError(
                "no model given: pass model=..., create the client with a model, "
                "or set LLM_DEFAULT_MODEL"
            )
        if self.spec is None:
            return chosen
        prefix = self.spec.litellm_provider + "/"
        return chosen if chosen.startswith(prefix) else prefix + chosen

    def _provider_of(self, litellm_model: str) -> tuple[str, str]:
        try:
            return _litellm.provider_of(litellm_model)
        except Exception as exc:
            raise ModelNotFoundError(
                f"no provider known for model {litellm_model!r}: use a LiteLLM model string "
                "such as 'openai/gpt-4o-mini', 'anthropic/claude-sonnet-4-5' or "
                "'gemini/gemini-2.5-flash'",
                model=litellm_model,
            ) from exc

    def _credentials(
        self, spec: ProviderSpec | None, litellm_provider: str
    ) -> tuple[str | None, str | None]:
        own = self._own_litellm_provider in (None, litellm_provider)
        configured = self.settings.provider(spec.name) if spec else None
        key = self._api_key if own and self._api_key else (configured and configured.api_key)
        base_url = (self._base_url if own else None) or (configured and configured.base_url)
        if spec is not None and key is None and base_url in (None, spec.default_base_url):
            client_name = (type(self) if self.spec else _client_name(spec)).__name__
            raise ConfigurationError(
                f"no API key for {spec.name}: set the {spec.api_key_env} environment variable "
                f"or pass {client_name}(api_key=...)"
            )
        return (key.get_secret_value() if key else None), (base_url or None)

    def _http_client(
        self, spec: ProviderSpec | None, api_key: str | None, base_url: str | None
    ) -> Any:
        if spec is None:
            return None  # an unregistered provider: LiteLLM's own client handling
        slot = (spec.name, api_key, base_url)
        if slot not in self._http_clients:
            if spec.http_client == "openai_sdk":
                client = _litellm.openai_sdk_client(
                    api_key=api_key, base_url=base_url, timeout=self.timeout
                )
            else:
                client = _litellm.http_handler(timeout=self.timeout)
            self._http_clients[slot] = client
        return self._http_clients[slot]

    def _raw_key(self) -> str | None:
        return self._api_key.get_secret_value() if self._api_key else None

    def _logged(self, call: PreparedCall) -> tuple[LLMMessage, ...] | None:
        return call.messages if self.log_content else None

    def _log_failure(self, error: LLMClientError, call: PreparedCall, *, stream: bool) -> None:
        latency = time.monotonic() - call.started
        _events.request_failed(error, stream=stream, latency=latency, messages=self._logged(call))


@cache
def _accepts_temperature(model: str, provider: str) -> bool:
    # OpenAI's reasoning models (o1, o3, gpt-5, ...) reject any temperature but 1, so a default
    # is not sent to them; an explicit one still is, and the provider decides. LiteLLM lists
    # "temperature" as supported for them, so its reasoning flag is what tells them apart.
    if provider != "openai":
        return True
    try:
        return not _litellm.litellm().supports_reasoning(model=model)
    except Exception:  # noqa: BLE001 - an unmapped model: assume the common case
        return True


def _registered_spec(litellm_provider: str | None) -> ProviderSpec | None:
    if litellm_provider is None:
        return None
    # Imported here: the registry imports the provider clients, which subclass this module's.
    from aiecs_llm.providers import SPECS_BY_LITELLM_PROVIDER

    return SPECS_BY_LITELLM_PROVIDER.get(litellm_provider)


def _client_name(spec: ProviderSpec) -> type[BaseLLMClient]:
    from aiecs_llm.providers import PROVIDERS

    return PROVIDERS[spec.name]


def _prefix_of(model: str | None) -> str | None:
    return model.split("/", 1)[0] if model and "/" in model else None


async def _close_quietly(raw: Any) -> None:
    closer = getattr(raw, "aclose", None)
    if closer is None:
        return
    try:
        await closer()
    except Exception:  # noqa: BLE001 - the stream is done with; nothing to report
        return
