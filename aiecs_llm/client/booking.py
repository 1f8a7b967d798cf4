"""Booking a call, plain or streamed: the budget it holds before it is sent and, when it ends,
exactly one record for the ledger, the metrics and the alerts, and its failure event.

``Accounting._finish`` is synchronous and never awaits, so it runs to completion even on the path
of a task being cancelled: no call leaves a budget hold behind or goes unrecorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from aiecs_llm.accounting import pricing
from aiecs_llm.accounting.alerts import AlertManager
from aiecs_llm.accounting.budget import BudgetBook, BudgetReservation
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.client import events as _events
from aiecs_llm.config.settings import TokenPrice
from aiecs_llm.errors import (
    BudgetExceededError,
    ConfigurationError,
    InvalidResponseError,
    LLMClientError,
    RequestTimeoutError,
    StreamInterruptedError,
)
from aiecs_llm.transport.call import CallRequest
from aiecs_llm.types import LLMMessage, LLMResponse

_log = structlog.get_logger("aiecs_llm.client.booking")


class Accounting:
    """The budget, ledger, monitor and alerts one client reports to."""

    def __init__(
        self,
        *,
        monitor: LLMMonitor,
        ledger: UsageLedger | None = None,
        budget: BudgetBook | None = None,
        alerts: AlertManager | None = None,
    ) -> None:
        self.monitor = monitor
        self.ledger = ledger
        self.budget = budget
        self.alerts = alerts

    async def reserve(
        self,
        *,
        models: Sequence[str],
        messages: Sequence[LLMMessage],
        max_tokens: int | None,
        tags: Mapping[str, str],
        overrides: Mapping[str, TokenPrice],
        parameters: Mapping[str, Any],
        allow_unpriced: bool = False,
    ) -> BudgetReservation | None:
        """Hold the call's worst-case cost on every budget it falls under; raises
        ``BudgetExceededError`` before anything is sent when one would be crossed.

        The worst case is the whole request as the provider bills it: the messages and the
        schemas in ``parameters`` (tools, an output schema) as input, and every completion
        asked for (``n``) at its output limit.
        """
        if self.budget is None or not self.budget.budgets:
            return None
        prompt_tokens = pricing.billed_input_tokens(
            models[0], [message.model_dump() for message in messages], parameters
        )
        if max_tokens is None and isinstance(parameters.get("max_completion_tokens"), int):
            max_tokens = parameters["max_completion_tokens"]
        worst = pricing.worst_case_cost(
            models,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            overrides=overrides,
            completions=pricing.completions_asked(parameters),
        )
        if worst is None:
            # Nothing is known about the price, so nothing can be held: a budget that let
            # such calls through could never refuse them.
            if not allow_unpriced:
                raise BudgetExceededError(
                    f"no price is known for {models[0]}, so a budget cannot hold it: add "
                    f'[costs."{models[0]}"] input and output prices (USD per 1,000 tokens) to '
                    "the config file, or set [budgets] allow_unpriced = true "
                    "(LLM_BUDGET_ALLOW_UNPRICED=true) to let it through unheld",
                    code="unpriced_model",
                )
            _log.warning("llm.budget.unpriced_model", model=models[0])
            worst = 0.0
        return await self.budget.hold(worst, tags)

    def succeeded(
        self, request: CallRequest, response: LLMResponse, reservation: BudgetReservation | None
    ) -> None:
        """Account a call that answered."""
        record = _record(
            request,
            provider=response.provider,
            model=response.model,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            cached_tokens=response.cached_tokens,
            reasoning_tokens=response.reasoning_tokens,
            cost=response.cost_estimate,
            latency=response.response_time,
            time_to_first_chunk=response.time_to_first_chunk,
            fallback_from=response.fallback_from,
        )
        self._finish(record, reservation)

    def cached(self, request: CallRequest, response: LLMResponse) -> None:
        """Account a call answered from the response cache: nothing sent, nothing charged."""
        record = _record(
            request, provider=response.provider, model=response.model, cost=0.0, cache_hit=True
        )
        self._finish(record, None)

    def failed(
        self,
        request: CallRequest,
        error: Exception | None,
        reservation: BudgetReservation | None,
    ) -> None:
        """Account a call that failed (``error``: ours, or any other exception that escaped)
        or was cancelled (``None``).
        """
        provider, _, model = request.primary_model.partition("/")
        ours = error if isinstance(error, LLMClientError) else None
        # Billed but unanswered: the provider charges for what it generated whether or not we
        # read it, and says nothing about how much, so the hold's worst case is booked.
        estimated = reservation is not None and _may_have_been_billed(request, error)
        record = _record(
            request,
            provider=(ours.provider if ours else None) or provider,
            model=(ours.model if ours else None) or model or provider,
            outcome="error" if error is not None else "cancelled",
            error_class=type(error).__name__ if error is not None else None,
            status_code=ours.status_code if ours else None,
            cost=reservation.amount if estimated and reservation is not None else None,
            cost_estimated=estimated,
        )
        self._finish(record, reservation)

    def _finish(self, record: RequestRecord, reservation: BudgetReservation | None) -> None:
        if reservation is not None and self.budget is not None:
            self.budget.settle(reservation, record.cost or 0.0)
        if self.ledger is not None:
            self.ledger.record(record)
        self.monitor.record(record)
        if self.alerts is not None:
            self.alerts.check_error_rate(self.monitor)


def _may_have_been_billed(request: CallRequest, error: BaseException | None) -> bool:
    """Whether a call that did not answer may still be billed: a request went out, and it
    ended without the provider refusing it: cancelled, timed out, cut off mid-stream, answered
    with a 200 we could not use, or the client closed under it. A provider's error answer (4xx,
    5xx) is not billed.
    """
    if request.stats.attempts == 0:
        return False
    if error is None:
        return True
    if isinstance(error, RequestTimeoutError | StreamInterruptedError | InvalidResponseError):
        return True
    return isinstance(error, ConfigurationError) and error.code == "client_closed"


def _record(request: CallRequest, **fields: Any) -> RequestRecord:
    """A call's record: what every record says about the request, plus ``fields``."""
    elapsed = time.monotonic() - request.started
    fields.setdefault("latency", elapsed)
    return RequestRecord(
        started_at=datetime.now(UTC) - timedelta(seconds=elapsed),
        requested_model=request.primary_model,
        stream=request.stream,
        retries=max(request.stats.attempts - 1, 0),
        tags=dict(request.tags),
        **fields,
    )


class CallBook:
    """Books one client's calls, plain or streamed.

    Args:
        accounting: the budget, ledger, monitor and alerts the client reports to.
        overrides: the ``[costs]`` prices, which the budget hold uses too.
        default_params: LiteLLM parameters the client sends with every call (what they add
            to a request is held too).
        log_content: whether log events may show the prompt.
        allow_unpriced: let a call nobody can price through a budget (``[budgets]
            allow_unpriced``).

    """

    def __init__(
        self,
        accounting: Accounting,
        overrides: Mapping[str, TokenPrice],
        default_params: Mapping[str, Any],
        *,
        log_content: bool,
        allow_unpriced: bool = False,
    ) -> None:
        self.accounting = accounting
        self._overrides = overrides
        self._allow_unpriced = allow_unpriced
        self._default_params = default_params
        self._log_content = log_content

    async def reserve(
        self, request: CallRequest, models: Sequence[str]
    ) -> BudgetReservation | None:
        """Reserve the call's worst-case cost on every model of its chain (``models``);
        ``BudgetExceededError`` names the model asked for.
        """
        try:
            return await self.accounting.reserve(
                models=models,
                messages=request.messages,
                max_tokens=request.max_tokens,
                tags=request.tags,
                overrides=self._overrides,
                parameters={**self._default_params, **request.extra},
                allow_unpriced=self._allow_unpriced,
            )
        except BudgetExceededError as error:
            error.provider, _, error.model = request.primary_model.partition("/")
            raise

    def succeeded(
        self, request: CallRequest, response: LLMResponse, reservation: BudgetReservation | None
    ) -> None:
        """The one record and the log event of a call that answered."""
        self.accounting.succeeded(request, response, reservation)
        _events.request_completed(response, stream=request.stream, messages=self.logged(request))

    def cached(self, request: CallRequest, response: LLMResponse) -> None:
        """The one record and the log event of a call answered from the cache."""
        self.accounting.cached(request, response)
        _events.request_completed(response, stream=request.stream, messages=self.logged(request))

    def failed(
        self,
        request: CallRequest,
        error: BaseException | None,
        reservation: BudgetReservation | None,
    ) -> None:
        """The one record of a call that did not answer (and its failure event); ``None`` or a
        ``BaseException`` that is not an ``Exception`` means cancelled or stopped early.
        """
        if isinstance(error, LLMClientError):
            self.accounting.failed(request, error, reservation)
            self.log_failure(error, request)
        elif isinstance(error, Exception):  # a bug, ours or LiteLLM's: still an error
            self.accounting.failed(request, error, reservation)
        else:  # cancelled, or the consumer stopped early: still accounted
            self.accounting.failed(request, None, reservation)

    def log_failure(self, error: LLMClientError, request: CallRequest) -> None:
        """The call's failure event."""
        latency = time.monotonic() - request.started
        _events.request_failed(
            error, stream=request.stream, latency=latency, messages=self.logged(request)
        )

    def logged(self, request: CallRequest) -> tuple[LLMMessage, ...] | None:
        """The prompt as log events may show it: only when the client logs content."""
        return request.messages if self._log_content else None
