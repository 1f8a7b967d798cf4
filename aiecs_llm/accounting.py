"""Where every call is accounted: its budget hold before it is sent, and, when it ends, exactly
one record for the ledger, the metrics and the alerts.

``finish`` is synchronous and never awaits, so it runs to completion even on the path of a
task being cancelled: no call leaves a budget hold behind or goes unrecorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from aiecs_llm import pricing
from aiecs_llm.alerts import AlertManager
from aiecs_llm.budget import Budget, BudgetBook, BudgetController, BudgetReservation
from aiecs_llm.cache import CacheBackend, MemoryCache, ResponseCache, SQLiteCache
from aiecs_llm.calls import CallRequest
from aiecs_llm.errors import ConfigurationError, LLMClientError
from aiecs_llm.ledger import UsageLedger
from aiecs_llm.monitor import DEFAULT_MONITOR, LLMMonitor
from aiecs_llm.records import RequestRecord
from aiecs_llm.settings import Budgets, CacheSettings, LLMSettings, StateSettings, TokenPrice
from aiecs_llm.types import LLMMessage, LLMResponse

_log = structlog.get_logger("aiecs_llm.accounting")


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
    ) -> BudgetReservation | None:
        """Hold the call's worst-case cost on every budget it falls under; raises
        ``BudgetExceededError`` before anything is sent when one would be crossed.
        """
        if self.budget is None or not self.budget.budgets:
            return None
        prompt_tokens = pricing.count_tokens(
            models[0], messages=[message.model_dump() for message in messages]
        )
        worst = pricing.worst_case_cost(
            models, prompt_tokens=prompt_tokens, max_tokens=max_tokens, overrides=overrides
        )
        if worst is None:
            # Nothing is known about the price: the call cannot be held against the budget,
            # but it is still booked at its real cost if the provider's answer prices it.
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
        record = _record(
            request,
            provider=(ours.provider if ours else None) or provider,
            model=(ours.model if ours else None) or model or provider,
            outcome="error" if error is not None else "cancelled",
            error_class=type(error).__name__ if error is not None else None,
            status_code=ours.status_code if ours else None,
        )
        self._finish(record, reservation)

    def _finish(self, record: RequestRecord, reservation: BudgetReservation | None) -> None:
        if reservation is not None and self.budget is not None:
            # A provider bills what it generated even when we stopped listening, and we cannot
            # know how much: a cancelled call keeps its worst case. Errors were not billed.
            charged = record.cost
            if charged is None:
                charged = reservation.amount if record.outcome == "cancelled" else 0.0
            self.budget.settle(reservation, charged)
        if self.ledger is not None:
            self.ledger.record(record)
        self.monitor.record(record)
        if self.alerts is not None:
            self.alerts.check_error_rate(self.monitor)


class _Defaults:
    """One ledger per file and one budget controller per configuration, shared by the process's
    clients: limits belong to the account, not to a client object.
    """

    def __init__(self) -> None:
        self.ledgers: dict[str, UsageLedger] = {}
        self.budgets: dict[str, BudgetBook] = {}
        self.caches: dict[str, ResponseCache] = {}
        self.alerts = AlertManager()

    def cache(self, config: CacheSettings, state: StateSettings) -> ResponseCache | None:
        """The response cache for this configuration, shared by the process's clients."""
        if not config.enabled:
            return None
        slot = config.model_dump_json()
        if slot not in self.caches:
            backend: CacheBackend
            if config.backend == "sqlite":
                if config.path is None:
                    raise ConfigurationError("[cache] backend = 'sqlite' needs a path")
                backend = SQLiteCache(config.path, max_entries=config.max_entries)
            elif config.backend == "redis":
                if state.url is None:
                    raise ConfigurationError("[cache] backend = 'redis' needs LLM_STATE_URL")
                from aiecs_llm.redis_cache import RedisCache
                from aiecs_llm.redis_connection import connection_for

                backend = RedisCache(connection_for(state.url.get_secret_value()))
            else:
                backend = MemoryCache(max_entries=config.max_entries)
            self.caches[slot] = ResponseCache(
                backend, ttl=config.ttl, deterministic_only=config.deterministic_only
            )
        return self.caches[slot]

    def accounting(self, settings: LLMSettings, monitor: LLMMonitor | None) -> Accounting:
        ledger = self._ledger(settings.ledger.path)
        return Accounting(
            monitor=monitor or DEFAULT_MONITOR,
            ledger=ledger,
            budget=self._budget(settings.budgets, settings.state, ledger),
            alerts=self.alerts,
        )

    def _ledger(self, path: str | None) -> UsageLedger | None:
        if path is None:
            return None
        if path not in self.ledgers:
            self.ledgers[path] = UsageLedger(path)
        return self.ledgers[path]

    def _budget(
        self, config: Budgets, state: StateSettings, ledger: UsageLedger | None
    ) -> BudgetBook | None:
        budgets = budgets_from(config)
        if not budgets:
            return None
        url = state.url.get_secret_value() if state.url is not None else None
        slot = f"{config.model_dump_json()} {url} {state.budget_fail_open}"
        if slot not in self.budgets:
            if url is None:
                self.budgets[slot] = BudgetController(
                    budgets, timezone=config.timezone, ledger=ledger, alerts=self.alerts
                )
            else:
                from aiecs_llm.redis_budget import RedisBudget
                from aiecs_llm.redis_connection import connection_for

                self.budgets[slot] = RedisBudget(
                    budgets,
                    connection_for(url),
                    timezone=config.timezone,
                    ledger=ledger,
                    alerts=self.alerts,
                    fail_open=state.budget_fail_open,
                )
        return self.budgets[slot]


def budgets_from(config: Budgets) -> list[Budget]:
    """The ``[budgets]`` section as a list of limits."""
    budgets = []
    if config.daily is not None:
        budgets.append(Budget("daily", config.daily))
    if config.monthly is not None:
        budgets.append(Budget("monthly", config.monthly))
    for selector, limits in config.tags.items():
        key, equals, value = selector.partition("=")
        if not equals or not key.strip():
            raise ConfigurationError(
                f"budgets.tags key {selector!r} must look like 'service=billing'"
            )
        tags = {key.strip(): value.strip()}
        if limits.daily is not None:
            budgets.append(Budget("daily", limits.daily, tags))
        if limits.monthly is not None:
            budgets.append(Budget("monthly", limits.monthly, tags))
    return budgets


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


DEFAULTS = _Defaults()
"""The process-wide ledgers, budgets and alerts clients use unless given their own."""
