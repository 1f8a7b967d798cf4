"""The call pipeline: one validated request, from the cache to the log event.

``Pipeline.generate`` reads top to bottom as a plain call runs: cache lookup -> budget hold ->
for each route (model x key) and attempt, through the router (breaker, limits, retries) ->
``send`` -> read -> settle and book -> one log event. A streamed call takes the same steps in
``aiecs_llm.client.stream_call``, through the same ``route`` and ``send``.

``Pipeline.send`` is the only place a request leaves, plain or streamed, whichever attempt: to
the fast transport when it handles the call, to ``litellm.acompletion`` otherwise (both are an
``aiecs_llm.transport.base.Transport``). So there is one deadline check, one attempt count and
one exception translation for every attempt, whichever path it took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from aiecs_llm.accounting.cache import ResponseCache
from aiecs_llm.client.booking import CallBook
from aiecs_llm.client.cache_keys import CacheKeys
from aiecs_llm.client.fallback import Answer, Router, Target
from aiecs_llm.client.reading import to_response
from aiecs_llm.client.shutdown import InFlight
from aiecs_llm.client.targets import Targets
from aiecs_llm.client.validation import check_max_tokens
from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.providers.resolution import accepts_temperature, registered_spec
from aiecs_llm.resilience.hedging import hedged
from aiecs_llm.transport.base import SelectiveTransport, Transport
from aiecs_llm.transport.call import CallRequest, PreparedCall
from aiecs_llm.types import LLMResponse

READ_GRACE = 1.0
"""Seconds the transports' own time limit (each read of the answer) runs past the call's."""


def out_of_time(call: PreparedCall, cause: BaseException) -> TimeoutError:
    """The error of a call whose ``timeout`` ran out before its answer (or its first text)."""
    error = TimeoutError(f"no answer within the {call.request.timeout:g}s timeout")
    error.__cause__ = cause
    return error


class Pipeline:
    """Runs one client's calls; the client builds it once and hands it everything it needs.

    Args:
        settings: the client's configuration (fallbacks, defaults, resilience, prices).
        router: fallbacks, key rotation, circuit breaker, limits and retries.
        targets: where each model is sent, with which key and HTTP client.
        book: the budget hold before a call and its one record after.
        cache: the response cache, or None.
        cache_keys: which calls the cache takes, and under which key.
        default_params: LiteLLM parameters the client sends with every call.
        in_flight: the client's calls in flight, which ``close()`` ends.
        transport: ``litellm.acompletion``'s transport, for every call the fast one does not
            handle.
        fast: the fast transport, or None when it is off.

    """

    def __init__(
        self,
        *,
        settings: LLMSettings,
        router: Router,
        targets: Targets,
        book: CallBook,
        cache: ResponseCache | None,
        cache_keys: CacheKeys,
        default_params: Mapping[str, Any],
        in_flight: InFlight,
        transport: Transport,
        fast: SelectiveTransport | None,
    ) -> None:
        self._settings = settings
        self._router = router
        self._targets = targets
        self._book = book
        self._cache = cache
        self._cache_keys = cache_keys
        self._default_params = default_params
        self._in_flight = in_flight
        self._transport = transport
        self._fast = fast

    async def generate(self, request: CallRequest) -> LLMResponse:
        """The whole answer to a plain call: from the cache when it holds it, else sent."""
        key = self._cache_keys.key(request)
        if key is None or self._cache is None:
            return await self._generate(request)
        response, hit = await self._cache.get_or_call(
            key,
            partial(self._generate, request),
            mode=request.cache_mode,
            temperature=self._cache_keys.temperature(request),
        )
        if hit:
            self._book.cached(request, response)
        return response

    async def _generate(self, request: CallRequest) -> LLMResponse:
        reservation = None
        try:
            reservation = await self._book.reserve(request, self.chain(request))
            async with self._in_flight.scope():
                answer = await self.answer(request)
            async with answer.lease:
                response = to_response(answer.value, answer.call, answer.fallback_from)
                answer.call.settle(response)
        except BaseException as error:
            self._book.failed(request, error, reservation)
            raise
        self._book.succeeded(request, response, reservation)
        return response

    def chain(self, request: CallRequest) -> list[str]:
        """The models that may answer ``request``, in order: the one asked for, then its
        fallbacks.
        """
        fallbacks = self._settings.fallbacks
        bare = request.primary_model.split("/", 1)[-1]
        return [
            request.primary_model,
            *(fallbacks.get(request.primary_model) or fallbacks.get(bare) or []),
        ]

    async def route(
        self,
        request: CallRequest,
        attempt: Callable[[PreparedCall], Any],
        chain: Sequence[str] | None = None,
    ) -> Answer[Any]:
        """Run ``attempt`` on the routes of ``chain`` (default: the request's chain) until one
        answers; ``attempt`` must send through ``send``.
        """
        return await self._router.run(
            [partial(self._targets.target, model) for model in chain or self.chain(request)],
            partial(self._build_call, request),
            attempt,
            max_retries=request.max_retries,
            deadline=request.deadline,
            max_retry_after=self._settings.resilience.max_retry_after,
            prompt_tokens=request.prompt_tokens,
        )

    async def answer(self, request: CallRequest) -> Answer[Any]:
        """The answer to a plain (not streamed) call, hedged when the request asks for it."""
        if not request.hedge:
            return await self.route(request, self.send)
        chain = self.chain(request)
        # The second request goes to the next model of the chain, or to the same model again
        # (another key, another connection) when there is no other.
        backup = chain[1:] or chain

        async def via_backup() -> Answer[Any]:
            answer = await self.route(request, self.send, backup)
            if answer.call.params["model"] != chain[0]:
                answer.fallback_from = chain[0]
            return answer

        async def release(answer: Answer[Any]) -> None:
            await answer.lease.aclose()

        return await hedged(
            partial(self.route, request, self.send, chain),
            via_backup,
            delay=self._router.latencies.delay(chain[0]),
            release=release,
            label=chain[0],
        )

    async def send(self, call: PreparedCall) -> Any:
        """Send one attempt: LiteLLM's response, or for a stream its chunk iterator; every
        failure leaves as an ``LLMClientError``.
        """
        if self._in_flight.closed:  # closed while this call waited for its limits
            raise self._in_flight.ended()
        remaining = call.deadline - time.monotonic()
        if remaining <= 0:
            raise call.fail(TimeoutError(f"no time left of the {call.request.timeout:g}s timeout"))
        call.request.stats.attempts += 1  # only requests that go out count as retries
        fast = self._fast
        transport = fast if fast is not None and fast.handles(call) else self._transport
        # The call's time limit, kept here for either path: a read timeout alone lets an
        # answer that trickles in run long past it, and LiteLLM's Gemini path reads with its
        # HTTP client's timeout, not the call's. The transports' own limit is a little later,
        # so that this one decides (and words) the timeout.
        limit = asyncio.timeout(remaining)
        try:
            async with limit:
                if call.request.stream:
                    return await transport.stream(call, timeout=remaining + READ_GRACE)
                return await transport.send(call, timeout=remaining + READ_GRACE)
        except Exception as exc:  # the boundary: every failure leaves as a mapped error
            if limit.expired():
                exc = out_of_time(call, exc)
            error = call.fail(exc)  # translated even when replaced: that drops its tracebacks
            if self._in_flight.closed:  # its HTTP client was closed under it, not by the provider
                error = self._in_flight.ended()
            raise error from exc

    def _build_call(self, request: CallRequest, target: Target, key: str | None) -> PreparedCall:
        settings = self._settings
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
            params["temperature"] = settings.defaults.temperature
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
            overrides=settings.costs,
            usage_expected=spec is not None,
        )
