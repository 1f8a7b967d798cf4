"""``LiteLLMClient``: the concrete client for any LiteLLM model string, and the only place that
sends a request through LiteLLM.

Every call, plain or streamed, is validated once before any HTTP, then handed to the router
(fallback models, key rotation, circuit breaker, limits, retries) whose attempts all go through
``_send``: one exception translation, one usage and cost reading, one log event per call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

import structlog
from typing_extensions import override

from aiecs_llm import _events, _litellm, accounting, direct, pricing
from aiecs_llm import state as shared_state
from aiecs_llm.accounting import Accounting
from aiecs_llm.alerts import AlertManager
from aiecs_llm.budget import BudgetBook, BudgetReservation
from aiecs_llm.cache import ResponseCache, cache_key, mark_cached
from aiecs_llm.calls import CallRequest, PreparedCall, StreamReading, to_response
from aiecs_llm.client import BaseLLMClient
from aiecs_llm.errors import (
    BudgetExceededError,
    ConfigurationError,
    LLMClientError,
    StreamInterruptedError,
)
from aiecs_llm.hedging import LatencyTracker, hedged
from aiecs_llm.ledger import UsageLedger
from aiecs_llm.models import ModelManager
from aiecs_llm.monitor import LLMMonitor
from aiecs_llm.provider_spec import ProviderSpec
from aiecs_llm.resolution import (
    accepts_temperature,
    provider_of,
    registered_spec,
)
from aiecs_llm.routing import Answer, Router, Target
from aiecs_llm.settings import LLMSettings
from aiecs_llm.shutdown import InFlight
from aiecs_llm.state import InProcessState
from aiecs_llm.streaming import TextStream
from aiecs_llm.targets import Targets
from aiecs_llm.types import LLMMessage, LLMResponse
from aiecs_llm.validation import (
    check_context_window,
    check_extra_parameters,
    check_max_tokens,
    check_messages,
    check_seconds,
    check_temperature,
)

_log = structlog.get_logger("aiecs_llm")
# Per-call keyword arguments that are ours, not LiteLLM's.
_OUR_PARAMETERS = frozenset({"timeout", "max_retries", "hedge", "tags", "cache"})
_warned_deprecated: set[str] = set()
_FLUSH_ON_CLOSE = 5.0  # seconds close() waits for settlements a shared budget has not booked


class LiteLLMClient(BaseLLMClient):
    """A client for any model LiteLLM supports, named by its LiteLLM model string
    (``anthropic/claude-sonnet-4-5``, ``gemini/gemini-2.5-flash``, ``openai/gpt-4o-mini``, or
    ``openai/<model>`` with ``base_url`` for a local OpenAI-compatible server).

    Args:
        model: default model string for calls that do not name one; falls back to
            ``LLM_DEFAULT_MODEL`` / the config file.
        api_key: key for the provider of ``model`` (default: from the environment or config,
            where several keys may be configured for rotation).
        base_url: endpoint for the provider of ``model``, e.g. a proxy or a local server.
        timeout: seconds allowed per call, retries and fallbacks included (default
            ``LLM_TIMEOUT``, 60).
        max_retries: retries of rate limits and provider outages per model (default 2).
        settings: configuration; ``LLMSettings.load()`` when omitted.
        log_content: include prompts and answers in log events (off: they may be private).
        state: where breakers, key cool-downs and limits live (default: shared in-process).
        hedge: for latency-sensitive use: when a call is slower than the model's recent 95th
            percentile, send a second request to the next route and take the first answer.
        tags: caller tags added to every call (``service``, ``user``, ...), merged with a
            call's own ``tags=``; budgets, the ledger and reports group by them.
        monitor: the metrics every call is recorded into (default: the process's
            ``DEFAULT_MONITOR``).
        ledger: the usage ledger (default: the SQLite file of ``LLM_USAGE_DB`` / ``[ledger]``,
            shared by the process's clients; none when not configured).
        budget: the budget controller (default: from ``LLM_DAILY_BUDGET`` /
            ``LLM_MONTHLY_BUDGET`` / ``[budgets]``, shared by the process's clients).
        alerts: where budget and error-rate alerts go (default: the process's manager).
        cache: the response cache (default: ``[cache]``: in memory, ``temperature=0`` calls
            only, shared by the process's clients); a call's ``cache="force"`` or
            ``cache="bypass"`` overrides the policy.
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
        state: InProcessState | None = None,
        hedge: bool = False,
        tags: Mapping[str, str] | None = None,
        monitor: LLMMonitor | None = None,
        ledger: UsageLedger | None = None,
        budget: BudgetBook | None = None,
        alerts: AlertManager | None = None,
        cache: ResponseCache | None = None,
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
        self.hedge = hedge
        self.tags = dict(tags or {})
        shared = accounting.DEFAULTS.accounting(self.settings, monitor)
        self.accounting = Accounting(
            monitor=shared.monitor,
            ledger=ledger or shared.ledger,
            budget=budget or shared.budget,
            alerts=alerts or shared.alerts,
        )
        self.cache = cache or accounting.DEFAULTS.cache(self.settings.cache, self.settings.state)
        self.models = ModelManager(self.settings, self.settings.fallbacks)
        check_extra_parameters(default_params, error=ConfigurationError)
        self._default_params = default_params
        self._state = state or shared_state.state_for(self.settings)
        resilience = self.settings.resilience
        self._router = Router(
            breaker=self._state.breaker(resilience),
            models=self.models,
            latencies=LatencyTracker(
                percentile=resilience.hedge_percentile, default_delay=resilience.hedge_delay
            ),
        )
        self._targets = Targets(
            settings=self.settings,
            state=self._state,
            spec=self.spec,
            client_name=type(self).__name__,
            default_model=model,
            api_key=api_key,
            base_url=base_url,
            timeout=self.timeout,
        )
        self._in_flight = InFlight(type(self).__name__)
        # OpenAI and Anthropic calls skip litellm.acompletion's per-call work (aiecs_llm/direct).
        self._direct = direct.DirectTransport() if direct.enabled() else None
        super().__init__(
            self._targets.own_provider or self._targets.own_litellm_provider or "litellm"
        )
        if self.spec is not None:
            self._targets.keys(self.spec)  # fail fast on a missing key

    @override
    def __repr__(self) -> str:
        key = "set" if self._targets.own_key else "from config"
        return (
            f"{type(self).__name__}(provider={self.provider_name!r}, "
            f"model={self.default_model!r}, api_key={key}, closed={self._in_flight.closed})"
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
        that accept none (o-series); ``max_tokens`` defaults to ``LLM_MAX_TOKENS``. ``timeout``,
        ``max_retries`` and ``hedge`` may be given per call; other keyword arguments go to
        LiteLLM unchanged.
        """
        request = self._request(messages, model, temperature, max_tokens, kwargs, stream=False)
        key = self._cache_key(request)
        if key is None or self.cache is None:
            return await self._generate(request)
        response, hit = await self.cache.get_or_call(
            key,
            partial(self._generate, request),
            mode=request.cache_mode,
            temperature=self._temperature(request),
        )
        if hit:
            self.accounting.cached(request, response)
            _events.request_completed(response, stream=False, messages=self._logged(request))
        return response

    async def _generate(self, request: CallRequest) -> LLMResponse:
        reservation = None
        try:
            reservation = await self._reserve(request)
            async with self._in_flight.scope():
                answer = await self._answer(request)
            async with answer.lease:
                response = to_response(answer.value, answer.call, answer.fallback_from)
                answer.call.settle(response)
        except BaseException as error:
            self._account_failure(request, error, reservation)
            raise
        self.accounting.succeeded(request, response, reservation)
        _events.request_completed(response, stream=False, messages=self._logged(request))
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
        HTTP; a stream that breaks or goes silent after it started raises
        ``StreamInterruptedError`` with the text received so far.
        """
        request = self._request(messages, model, temperature, max_tokens, kwargs, stream=True)
        return TextStream(lambda stream: self._stream_chunks(request, stream))

    @override
    async def close(self) -> None:
        """End the calls in flight, book their budget settlements (a shared budget waits up to
        5 s for them), then close the HTTP clients this client opened; idempotent.

        A call or stream still running fails with ``ConfigurationError`` (code
        ``client_closed``); a call made afterwards fails the same way before anything is sent.
        """
        if self._in_flight.closed:
            return
        await self._in_flight.close()
        if self.accounting.budget is not None:
            await self.accounting.budget.flush(timeout=_FLUSH_ON_CLOSE)
        await self._targets.close()
        if self._direct is not None:
            await self._direct.close()

    def _request(
        self,
        messages: Sequence[LLMMessage],
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        extra: Mapping[str, Any],
        *,
        stream: bool,
    ) -> CallRequest:
        if self._in_flight.closed:
            raise self._in_flight.refused()
        conversation = check_messages(messages)
        check_extra_parameters(extra, _OUR_PARAMETERS)
        primary = self._targets.resolve_model(model)
        _, litellm_provider = provider_of(primary)
        tokens = max_tokens if max_tokens is not None else self.settings.defaults.max_tokens
        if tokens is not None:
            check_max_tokens(tokens, primary, litellm_provider)
        max_retries = extra.get("max_retries", self.max_retries)
        hedge = extra.get("hedge", self.hedge)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError("max_retries must be a whole number >= 0")
        self._warn_if_deprecated(primary)
        cache_mode = extra.get("cache", "auto")
        if cache_mode not in ("auto", "force", "bypass"):
            raise ConfigurationError("cache must be 'auto', 'force' or 'bypass'")
        call_tags = extra.get("tags") or {}
        if not isinstance(call_tags, Mapping):
            raise ConfigurationError("tags must be a mapping of names to values")
        request = CallRequest(
            primary_model=primary,
            messages=conversation,
            temperature=None if temperature is None else check_temperature(temperature),
            max_tokens=tokens,
            extra={k: v for k, v in extra.items() if k not in _OUR_PARAMETERS},
            timeout=check_seconds(extra.get("timeout", self.timeout), "timeout"),
            max_retries=max_retries,
            stream=stream,
            hedge=bool(hedge) and not stream,
            prompt_tokens=sum(pricing.estimate_tokens(m.content) for m in conversation),
            tags={**self.tags, **{str(k): str(v) for k, v in call_tags.items()}},
            cache_mode=cache_mode,
        )
        windows = [
            (name, info.context_window if (info := self.models.info(name)) else None)
            for name in self._chain(request)
        ]
        check_context_window(windows, conversation, request.prompt_tokens)
        return request

    def _chain(self, request: CallRequest) -> list[str]:
        fallbacks = self.settings.fallbacks
        bare = request.primary_model.split("/", 1)[-1]
        return [
            request.primary_model,
            *(fallbacks.get(request.primary_model) or fallbacks.get(bare) or []),
        ]

    async def _route(
        self,
        request: CallRequest,
        attempt: Callable[[PreparedCall], Any],
        chain: Sequence[str] | None = None,
    ) -> Answer[Any]:
        return await self._router.run(
            [partial(self._targets.target, model) for model in chain or self._chain(request)],
            partial(self._build_call, request),
            attempt,
            max_retries=request.max_retries,
            deadline=request.deadline,
            max_retry_after=self.settings.resilience.max_retry_after,
            prompt_tokens=request.prompt_tokens,
        )

    async def _answer(self, request: CallRequest) -> Answer[Any]:
        if not request.hedge:
            return await self._route(request, self._send)
        chain = self._chain(request)
        # The second request goes to the next model of the chain, or to the same model again
        # (another key, another connection) when there is no other.
        backup = chain[1:] or chain

        async def via_backup() -> Answer[Any]:
            answer = await self._route(request, self._send, backup)
            if answer.call.params["model"] != chain[0]:
                answer.fallback_from = chain[0]
            return answer

        async def release(answer: Answer[Any]) -> None:
            await answer.lease.aclose()

        return await hedged(
            partial(self._route, request, self._send, chain),
            via_backup,
            delay=self._router.latencies.delay(chain[0]),
            release=release,
            label=chain[0],
        )

    def _temperature(self, request: CallRequest) -> float:
        if request.temperature is not None:
            return request.temperature
        return self.settings.defaults.temperature

    def _cache_key(self, request: CallRequest) -> str | None:
        """The call's cache key, or None when the cache policy leaves this call out."""
        if self.cache is None or not self.cache.should_cache(
            self._temperature(request), request.cache_mode
        ):
            return None
        litellm_provider = provider_of(request.primary_model)[1]
        params = {
            "temperature": self._temperature(request),
            "max_tokens": request.max_tokens,
            # Another endpoint may serve another model under the same name.
            "api_base": self._targets.target_base_url(request.primary_model),
            **self._default_params,
            **request.extra,
        }
        return cache_key(
            provider=litellm_provider,
            model=request.primary_model,
            messages=[message.model_dump() for message in request.messages],
            params=params,
        )

    async def _reserve(self, request: CallRequest) -> BudgetReservation | None:
        try:
            return await self.accounting.reserve(
                models=self._chain(request),
                messages=request.messages,
                max_tokens=request.max_tokens,
                tags=request.tags,
                overrides=self.settings.costs,
            )
        except BudgetExceededError as error:
            error.provider, _, error.model = request.primary_model.partition("/")
            raise

    def _build_call(self, request: CallRequest, target: Target, key: str | None) -> PreparedCall:
        params: dict[str, Any] = {
            "model": target.litellm_model,
            "messages": [message.model_dump() for message in request.messages],
            # One retry layer only: ours.
            "num_retries": 0,
            "max_retries": 0,
            **self._default_params,
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        elif accepts_temperature(target.litellm_model, target.litellm_provider):
            params["temperature"] = self.settings.defaults.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = check_max_tokens(
                request.max_tokens, target.litellm_model, target.litellm_provider
            )
        if key is not None:
            params["api_key"] = key
        if target.base_url is not None:
            params["api_base"] = target.base_url
        if request.stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        params.update(request.extra)
        spec = registered_spec(target.litellm_provider)
        return PreparedCall(
            request=request,
            params=params,
            model=target.model,
            provider=target.provider,
            litellm_provider=target.litellm_provider,
            secrets=tuple(s for s in (key, self._targets.own_key) if s),
            http_client=self._targets.http_client(spec, key, target.base_url),
            overrides=self.settings.costs,
            usage_expected=spec is not None,
        )

    async def _send(self, call: PreparedCall) -> Any:
        if self._in_flight.closed:  # closed while this call waited for its limits
            raise self._in_flight.ended()
        remaining = call.deadline - time.monotonic()
        if remaining <= 0:
            raise call.fail(TimeoutError(f"no time left of the {call.request.timeout:g}s timeout"))
        call.request.stats.attempts += 1  # only requests that go out count as retries
        try:
            if self._direct is not None and self._direct.handles(call):
                return await self._direct.send(call, timeout=remaining)
            params = dict(call.params, timeout=remaining)
            if call.http_client is not None:
                params["client"] = call.http_client
            return await _litellm.litellm().acompletion(**params)
        except Exception as exc:  # the boundary: every failure leaves as a mapped error
            error = call.fail(exc)  # translated even when replaced: that drops its tracebacks
            if self._in_flight.closed:  # its HTTP client was closed under it, not by the provider
                error = self._in_flight.ended()
            raise error from exc

    async def _open_stream(self, call: PreparedCall) -> tuple[Any, StreamReading, str | None]:
        # Until the caller has seen text, nothing is lost by starting again, so the attempt
        # (and with it retries and fallbacks) lasts until the first text chunk. Provider errors
        # often arrive only there, not with the HTTP response headers.
        raw = await self._send(call)
        reading = StreamReading(call, raw)
        try:
            while (chunk := await self._next_chunk(raw)) is not None:
                if text := reading.add(chunk):
                    return raw, reading, text
            reading.finish()
        except Exception as exc:  # the boundary, as in _send
            await _close_quietly(raw)
            raise call.fail(exc) from exc
        return raw, reading, None

    async def _stream_chunks(
        self, request: CallRequest, stream: TextStream
    ) -> AsyncGenerator[str, None]:
        key = self._cache_key(request)
        if key is not None and self.cache is not None:
            entry = await self.cache.get(key)
            if entry is not None:
                for chunk in entry.replay_chunks:
                    yield chunk
                cached = mark_cached(entry.response)
                self.accounting.cached(request, cached)
                stream._finish(cached)
                return
        reservation = None
        try:
            reservation = await self._reserve(request)
            async with self._in_flight.scope():
                answer = await self._route(request, self._open_stream)
        except BaseException as error:
            self._account_failure(request, error, reservation)
            raise
        raw, reading, text = answer.value
        call = reading.call
        async with answer.lease:
            try:
                while text is not None:
                    yield text
                    text = None
                    while text is None and (chunk := await self._next_chunk(raw)) is not None:
                        text = reading.add(chunk) or None
                response = reading.finish(answer.fallback_from)
            except Exception as exc:
                interrupted = StreamInterruptedError(
                    f"the stream broke after {len(reading.text)} characters: "
                    f"{call.fail(exc).message}",
                    partial_text=reading.text,
                    provider=call.provider,
                    model=call.model,
                    status_code=getattr(exc, "status_code", None),
                )
                self.accounting.failed(request, interrupted, reservation)
                self._log_failure(interrupted, request)
                raise interrupted from exc
            except BaseException:
                # The consumer stopped early (aclose) or its task was cancelled.
                self.accounting.failed(request, None, reservation)
                raise
            finally:
                await _close_quietly(raw)
            call.settle(response)
        self.accounting.succeeded(request, response, reservation)
        if key is not None and self.cache is not None:
            await self.cache.put(key, response, chunks=tuple(reading.parts))
        stream._finish(response)
        _events.request_completed(response, stream=True, messages=self._logged(request))

    async def _next_chunk(self, raw: Any) -> Any:
        idle = self.settings.resilience.stream_idle_timeout
        try:
            async with self._in_flight.scope(idle):
                return await anext(raw, None)
        except TimeoutError:
            raise TimeoutError(f"the stream went silent for {idle:g}s") from None

    def _warn_if_deprecated(self, model: str) -> None:
        if model in _warned_deprecated:
            return
        _warned_deprecated.add(model)
        warning = self.models.deprecation_warning(model)
        if warning is not None:
            _log.warning("llm.model.deprecated", model=model, detail=warning)

    def _logged(self, request: CallRequest) -> tuple[LLMMessage, ...] | None:
        return request.messages if self.log_content else None

    def _account_failure(
        self, request: CallRequest, error: BaseException, reservation: BudgetReservation | None
    ) -> None:
        """The one record of a call that did not answer."""
        if isinstance(error, LLMClientError):
            self.accounting.failed(request, error, reservation)
            self._log_failure(error, request)
        elif isinstance(error, Exception):  # a bug, ours or LiteLLM's: still an error
            self.accounting.failed(request, error, reservation)
        else:  # cancelled, or the consumer stopped early: still accounted
            self.accounting.failed(request, None, reservation)

    def _log_failure(self, error: LLMClientError, request: CallRequest) -> None:
        latency = time.monotonic() - request.started
        _events.request_failed(
            error, stream=request.stream, latency=latency, messages=self._logged(request)
        )


async def _close_quietly(raw: Any) -> None:
    closer = getattr(raw, "aclose", None)
    if closer is None:
        return
    try:
        await closer()
    except Exception:  # noqa: BLE001 - the stream is done with; nothing to report
        return
