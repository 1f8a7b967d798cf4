"""``LiteLLMClient``: the concrete client for any LiteLLM model string.

Every call, plain or streamed, is validated here once before any HTTP into a ``CallRequest``,
then run by the pipeline (``aiecs_llm.client.pipeline``; streams in
``aiecs_llm.client.stream_call``). The client builds the pipeline's parts once and hands each
what it needs; none of them holds a pointer back to the client. It ends its calls on
``close()``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import structlog
from typing_extensions import override

from aiecs_llm.accounting import pricing
from aiecs_llm.accounting.alerts import AlertManager
from aiecs_llm.accounting.budget import BudgetBook
from aiecs_llm.accounting.cache import ResponseCache
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.client import shared
from aiecs_llm.client.base import BaseLLMClient
from aiecs_llm.client.booking import Accounting, CallBook
from aiecs_llm.client.cache_keys import CacheKeys
from aiecs_llm.client.fallback import Router
from aiecs_llm.client.pipeline import Pipeline
from aiecs_llm.client.shutdown import InFlight
from aiecs_llm.client.stream_call import StreamPath
from aiecs_llm.client.targets import Targets
from aiecs_llm.client.text_stream import TextStream
from aiecs_llm.client.validation import (
    check_context_window,
    check_extra_parameters,
    check_max_tokens,
    check_messages,
    check_seconds,
    check_temperature,
)
from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.providers import engine
from aiecs_llm.providers.catalogue import ModelManager
from aiecs_llm.providers.resolution import provider_of
from aiecs_llm.providers.spec import ProviderSpec
from aiecs_llm.resilience.hedging import LatencyTracker
from aiecs_llm.resilience.state import InProcessState
from aiecs_llm.transport.call import CallRequest
from aiecs_llm.transport.fast import FastTransport
from aiecs_llm.transport.fast import enabled as fast_transport_enabled
from aiecs_llm.transport.litellm import LiteLLMTransport
from aiecs_llm.types import LLMMessage, LLMResponse

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
        process_wide = shared.DEFAULTS.accounting(self.settings, monitor)
        self.accounting = Accounting(
            monitor=process_wide.monitor,
            ledger=ledger or process_wide.ledger,
            budget=budget or process_wide.budget,
            alerts=alerts or process_wide.alerts,
        )
        self.cache = cache or shared.DEFAULTS.cache(self.settings.cache, self.settings.state)
        self.models = ModelManager(self.settings, self.settings.fallbacks)
        check_extra_parameters(default_params, error=ConfigurationError)
        self._state = state or shared.state_for(self.settings)
        resilience = self.settings.resilience
        router = Router(
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
        # Calls LiteLLM's provider configs can carry skip litellm.acompletion's per-call work
        # (aiecs_llm/transport/fast.py); every other call goes through acompletion.
        self._fast = FastTransport() if fast_transport_enabled() else None
        self._litellm_transport = LiteLLMTransport()
        book = CallBook(
            self.accounting,
            self.settings.costs,
            default_params,
            log_content=log_content,
            allow_unpriced=self.settings.budgets.allow_unpriced,
        )
        cache_keys = CacheKeys(
            self.cache, self._targets, default_params, default_temperature=defaults.temperature
        )
        self._pipeline = Pipeline(
            settings=self.settings,
            router=router,
            targets=self._targets,
            book=book,
            cache=self.cache,
            cache_keys=cache_keys,
            default_params=default_params,
            in_flight=self._in_flight,
            transport=self._litellm_transport,
            fast=self._fast,
        )
        self._streams = StreamPath(
            pipeline=self._pipeline,
            book=book,
            cache=self.cache,
            cache_keys=cache_keys,
            in_flight=self._in_flight,
            idle_timeout=resilience.stream_idle_timeout,
        )
        super().__init__(
            self._targets.own_provider or self._targets.own_litellm_provider or "litellm"
        )
        if self.spec is not None:
            self._targets.keys(self.spec)  # fail fast on a missing key
        engine.load_in_background()

    async def warm_up(self) -> None:
        """Load what the first call would otherwise load (LiteLLM, seconds), off the event loop.

        Await it once when a service starts, before it takes traffic, so that the first
        request is as fast as the others; ``aiecs-llm serve`` does. Calls work without it.
        """
        await engine.load()

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
        await engine.load()  # validation reads LiteLLM's model map
        request = self._request(messages, model, temperature, max_tokens, kwargs, stream=False)
        return await self._pipeline.generate(request)

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
        return TextStream(lambda stream: self._streams.chunks(request, stream))

    @override
    async def close(self) -> None:
        """End the calls in flight, book their budget settlements (a shared budget waits up to
        5 s for them) and write their ledger records, then close the HTTP clients this client
        opened; idempotent.

        A call or stream still running fails with ``ConfigurationError`` (code
        ``client_closed``); a call made afterwards fails the same way before anything is sent.
        """
        if self._in_flight.closed:
            return
        await self._in_flight.close()
        if self.accounting.budget is not None:
            await self.accounting.budget.flush(timeout=_FLUSH_ON_CLOSE)
        if self.accounting.ledger is not None:
            # Every record of this client is in the ledger file when close() returns, not
            # only at process exit.
            try:
                await self.accounting.ledger.aflush()
            except (TimeoutError, sqlite3.Error) as error:
                _log.warning(
                    "llm.ledger.flush_failed", error=type(error).__name__, detail=str(error)
                )
        await self._targets.close()
        await self._litellm_transport.close()
        if self._fast is not None:
            await self._fast.close()

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
            for name in self._pipeline.chain(request)
        ]
        check_context_window(windows, conversation, request.prompt_tokens)
        return request

    def _warn_if_deprecated(self, model: str) -> None:
        if model in _warned_deprecated:
            return
        _warned_deprecated.add(model)
        warning = self.models.deprecation_warning(model)
        if warning is not None:
            _log.warning("llm.model.deprecated", model=model, detail=warning)
