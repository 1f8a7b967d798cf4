"""What the process's clients share unless given their own: one ledger per file, one budget
controller per configuration, one response cache per configuration, one alert manager, and the
resilience state (in process, or in Redis with ``LLM_STATE_URL``). Limits belong to the account,
not to a client object.
"""

from __future__ import annotations

from aiecs_llm.accounting.alerts import AlertManager
from aiecs_llm.accounting.budget import Budget, BudgetBook, BudgetController
from aiecs_llm.accounting.cache import ResponseCache
from aiecs_llm.accounting.cache_store import CacheBackend, MemoryCache, SQLiteCache
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import DEFAULT_MONITOR, LLMMonitor
from aiecs_llm.client.booking import Accounting
from aiecs_llm.config.settings import Budgets, CacheSettings, LLMSettings, StateSettings
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.redis.budget import RedisBudget
from aiecs_llm.redis.cache import RedisCache
from aiecs_llm.redis.connection import connection_for
from aiecs_llm.redis.state import shared_state
from aiecs_llm.resilience import state as resilience_state
from aiecs_llm.resilience.state import InProcessState


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


def state_for(settings: LLMSettings) -> InProcessState:
    """The state a client of ``settings`` shares: ``DEFAULT_STATE``, or with ``LLM_STATE_URL``
    the process's ``RedisState`` for that URL.
    """
    if settings.state.url is None:
        return resilience_state.DEFAULT_STATE
    return shared_state(settings.state.url.get_secret_value())


DEFAULTS = _Defaults()
"""The process-wide ledgers, budgets and alerts clients use unless given their own."""
