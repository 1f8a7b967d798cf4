"""Budgets that cannot be overshot: the spec's CostController, made safe under concurrency.

Before a request is sent, its worst-case cost (prompt tokens plus ``max_tokens`` at the output
price) is reserved against every budget it falls under; after it, the reservation is settled
to the real cost. Reserving is synchronous (no ``await`` between the check and the booking),
so however many calls run at once on the event loop, booked spend plus reservations never
exceed a limit. A request that would cross one raises ``BudgetExceededError`` before any HTTP.

Periods (day, month) follow a configured timezone. Spend already in the usage ledger for the
current period is loaded on first use, so budgets survive a restart.

``BudgetBook`` is what the client needs from a budget; ``BudgetController`` keeps one process's
books, ``aiecs_llm.redis.budget.RedisBudget`` keeps the books of every replica in Redis.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from typing_extensions import override

from aiecs_llm.errors import BudgetExceededError, ConfigurationError

Period = Literal["daily", "monthly"]
_log = structlog.get_logger("aiecs_llm.accounting.budget")


class SpendSource(Protocol):
    """Where spend already made is read from (the usage ledger)."""

    def spend(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> float:
        """USD spent in ``[since, until)`` by calls carrying ``tags``."""
        ...


class BudgetAlerts(Protocol):
    """Who is told how much of a budget is used (the alert manager)."""

    def budget_used(self, name: str, period_key: str, fraction: float) -> None:
        """``fraction`` of budget ``name`` is used in period ``period_key``."""
        ...


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit: ``daily`` or ``monthly`` USD, for all calls or those carrying ``tags``."""

    period: Period
    limit: float
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``daily`` or ``daily:service=billing``."""
        if not self.tags:
            return self.period
        labels = ",".join(f"{key}={value}" for key, value in sorted(self.tags.items()))
        return f"{self.period}:{labels}"

    def applies_to(self, tags: Mapping[str, str]) -> bool:
        """Whether a call with ``tags`` counts against this budget."""
        return all(tags.get(key) == value for key, value in self.tags.items())


@dataclass(slots=True)
class _Account:
    spent: float = 0.0
    reserved: float = 0.0


@dataclass(frozen=True, slots=True)
class BudgetReservation:
    """A call's hold on its budgets, to be settled exactly once."""

    id: int | str
    amount: float
    accounts: tuple[tuple[Budget, str], ...]
    """(budget, period key) pairs the amount is held against."""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget in the current period."""

    name: str
    period_key: str
    limit: float
    spent: float
    reserved: float

    @property
    def remaining(self) -> float:
        """What is left to reserve."""
        return max(self.limit - self.spent - self.reserved, 0.0)


class BudgetBook(Protocol):
    """Where a call's cost is held before it is sent and booked when it ends."""

    @property
    def budgets(self) -> tuple[Budget, ...]:
        """The limits kept."""
        ...

    async def hold(self, amount: float, tags: Mapping[str, str]) -> BudgetReservation:
        """Hold ``amount`` USD against every budget a call with ``tags`` falls under, or raise
        ``BudgetExceededError``.
        """
        ...

    def settle(self, reservation: BudgetReservation, actual: float) -> None:
        """Replace the hold by the real cost; synchronous, so that it runs even on the path of a
        task being cancelled, and idempotent.
        """
        ...

    async def flush(self, timeout: float | None = None) -> None:
        """Wait (up to ``timeout`` seconds) until every settlement made so far is booked."""
        ...


class BudgetController(BudgetBook):
    """Daily and monthly limits, globally and per tag, in this process."""

    def __init__(
        self,
        budgets: Sequence[Budget],
        *,
        timezone: str = "UTC",
        ledger: SpendSource | None = None,
        alerts: BudgetAlerts | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._budgets = check_budgets(budgets)
        self.timezone = zone(timezone)
        self._ledger = ledger
        self._alerts = alerts
        self._clock = clock
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._open: dict[int | str, BudgetReservation] = {}
        self._ids = itertools.count(1)
        # Reservations come from the event loop, settlements may come from anywhere.
        self._lock = threading.Lock()

    @property
    @override
    def budgets(self) -> tuple[Budget, ...]:
        return self._budgets

    @override
    async def hold(self, amount: float, tags: Mapping[str, str]) -> BudgetReservation:
        """``reserve``, with the spend of periods not seen yet read from the ledger off the
        event loop first: a ledger locked by another process then delays this call only, and
        fails it as ``BudgetExceededError`` (code ``budget_unavailable``), not as a bare error.
        """
        if self._ledger is not None:
            now = self._clock()
            unloaded = []
            with self._lock:
                for budget in self.budgets:
                    key = period_key(budget.period, now, self.timezone)
                    if budget.applies_to(tags) and (budget.name, key) not in self._accounts:
                        unloaded.append((budget, key))
            if unloaded:
                try:
                    spent = await asyncio.to_thread(self._spent_before, unloaded, now)
                except (TimeoutError, sqlite3.Error) as exc:
                    raise BudgetExceededError(
                        "the spend so far could not be read from the usage ledger, so the "
                        f"budget cannot be checked: {type(exc).__name__}: {exc}",
                        code="budget_unavailable",
                    ) from exc
                with self._lock:
                    for (budget, key), amount_spent in zip(unloaded, spent, strict=True):
                        self._accounts.setdefault((budget.name, key), _Account(amount_spent))
        return self.reserve(amount, tags)

    def _spent_before(self, unloaded: list[tuple[Budget, str]], now: datetime) -> list[float]:
        return [self._ledger_spend(budget, key, now) for budget, key in unloaded]

    def reserve(self, amount: float, tags: Mapping[str, str]) -> BudgetReservation:
        """Hold ``amount`` USD against every budget the call falls under, or raise
        ``BudgetExceededError`` naming the first budget it would cross.
        """
        now = self._clock()
        with self._lock:
            held = []
            for budget in self.budgets:
                if not budget.applies_to(tags):
                    continue
                key = period_key(budget.period, now, self.timezone)
                account = self._account(budget, key, now)
                if account.spent + account.reserved + amount > budget.limit:
                    raise BudgetExceededError(
                        f"budget {budget.name} ({key}) would be exceeded: limit "
                        f"${budget.limit:.4f}, spent ${account.spent:.4f}, reserved "
                        f"${account.reserved:.4f}, this request up to ${amount:.4f}",
                        code="budget_exceeded",
                    )
                held.append((budget, key))
            for budget, key in held:
                self._accounts[(budget.name, key)].reserved += amount
            reservation = BudgetReservation(next(self._ids), amount, tuple(held))
            self._open[reservation.id] = reservation
        return reservation

    @override
    def settle(self, reservation: BudgetReservation, actual: float) -> None:
        """Replace the hold by the real cost (0 for a call that cost nothing); idempotent."""
        with self._lock:
            if self._open.pop(reservation.id, None) is None:
                return
            used: list[tuple[Budget, str, float]] = []
            for budget, key in reservation.accounts:
                account = self._accounts[(budget.name, key)]
                # Rounded so that float residue (1e-19) does not read as a standing hold.
                account.reserved = max(round(account.reserved - reservation.amount, 12), 0.0)
                account.spent += actual
                if budget.limit > 0:
                    used.append((budget, key, account.spent / budget.limit))
        if self._alerts is not None:
            for budget, key, fraction in used:
                self._alerts.budget_used(budget.name, key, fraction)

    @override
    async def flush(self, timeout: float | None = None) -> None:
        """Nothing to wait for: settlements are booked when made."""

    def status(self) -> list[BudgetStatus]:
        """Every budget in the current period."""
        now = self._clock()
        with self._lock:
            result = []
            for budget in self.budgets:
                key = period_key(budget.period, now, self.timezone)
                account = self._account(budget, key, now)
                result.append(
                    BudgetStatus(budget.name, key, budget.limit, account.spent, account.reserved)
                )
        return result

    def _account(self, budget: Budget, key: str, now: datetime) -> _Account:
        slot = (budget.name, key)
        if slot not in self._accounts:
            self._accounts[slot] = _Account(spent=self._ledger_spend(budget, key, now))
        return self._accounts[slot]

    def _ledger_spend(self, budget: Budget, key: str, now: datetime) -> float:
        if self._ledger is None:
            return 0.0
        since, until = period_bounds(budget.period, now, self.timezone)
        spent = self._ledger.spend(since=since, until=until, tags=budget.tags or None)
        _log.info("llm.budget.loaded", budget=budget.name, period=key, spent_usd=spent)
        return spent


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; ``ConfigurationError`` when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown budget timezone {name!r}") from None


def check_budgets(budgets: Sequence[Budget]) -> tuple[Budget, ...]:
    """``budgets`` as a tuple; ``ConfigurationError`` for a negative limit."""
    for budget in budgets:
        if budget.limit < 0:
            raise ConfigurationError(f"budget {budget.name} must not be negative")
    return tuple(budgets)


def period_key(period: Period, now: datetime, timezone: ZoneInfo) -> str:
    """``2026-11-25`` (daily) or ``2026-11`` (monthly): the period ``now`` falls in."""
    local = now.astimezone(timezone)
    return local.strftime("%Y-%m-%d" if period == "daily" else "%Y-%m")


def period_bounds(period: Period, now: datetime, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC ``[start, end)`` of the period ``now`` falls in."""
    local = now.astimezone(timezone)
    if period == "daily":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)  # wall-clock arithmetic: the next local midnight
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.astimezone(UTC), end.astimezone(UTC)
