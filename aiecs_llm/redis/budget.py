"""Budgets shared by every replica of a service, kept in Redis.

The same reservations as ``BudgetController`` (hold the worst case before sending, settle to
the real cost after), made atomic across processes by Lua scripts. Each budget and period is
one hash, ``aiecs_llm:{budget}:<name>:<period>``, with ``spent``, ``reserved`` and one
``h:<id>`` field per open hold, beside a sorted set ``...:holds`` of hold ids by expiry time
(Redis server time, so replicas' clocks do not matter). A hold that is not settled within
``hold_ttl`` seconds (its replica crashed) is dropped by the next reservation on that budget;
the hash itself expires a day after its period ends. The ``{budget}`` hash tag keeps every
budget key in one Redis Cluster slot, as a multi-key script needs.

Settling is synchronous for the caller (it runs even on the path of a cancelled task): the
settlement is queued and written by a background task, retried until Redis takes it. A
per-reservation marker makes a settlement that is retried after a lost reply count once.

When a period's hash is missing (first use, or Redis lost its data), it is seeded from the
usage ledger, as ``BudgetController`` does after a restart.

When Redis is unreachable, ``hold`` fails closed (``BudgetExceededError`` with code
``budget_unavailable``) unless ``fail_open``: then the call goes ahead with a logged warning
and its cost is booked when Redis is back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from typing_extensions import override

from aiecs_llm.accounting.budget import (
    Budget,
    BudgetAlerts,
    BudgetBook,
    BudgetReservation,
    BudgetStatus,
    SpendSource,
    check_budgets,
    period_bounds,
    period_key,
    zone,
)
from aiecs_llm.errors import BudgetExceededError
from aiecs_llm.redis.connection import LuaScript, RedisConnection, RedisUnavailable, spawn

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_HOLD_TTL", "RedisBudget"]

DEFAULT_HOLD_TTL = 600.0
"""Seconds a hold lasts without being settled: longer than any call, short enough that a
crashed replica's holds are back within minutes."""
_SETTLED_TTL = 3600  # seconds a settlement is remembered, to ignore a retry of it
_KEEP_AFTER_PERIOD = 86_400  # seconds a period's books outlive it, for late settlements
_log = structlog.get_logger("aiecs_llm.accounting.budget")

# KEYS: (account, holds) per budget. ARGV: amount, id, hold ttl ms, then (limit, seed, key ttl s)
# per budget; an empty seed asks the caller for one when the account is missing.
_RESERVE = LuaScript("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local amount = tonumber(ARGV[1])
local n = #KEYS / 2
local missing = {}
for i = 1, n do
  if redis.call('HEXISTS', KEYS[2 * i - 1], 'spent') == 0 then
    local seed = ARGV[3 + 3 * i - 1]
    if seed == '' then
      table.insert(missing, i)
    else
      redis.call('HSET', KEYS[2 * i - 1], 'spent', seed, 'reserved', '0')
      redis.call('EXPIRE', KEYS[2 * i - 1], ARGV[3 + 3 * i])
    end
  end
end
if #missing > 0 then return {'seed', unpack(missing)} end
local expired = 0
for i = 1, n do
  local account, holds = KEYS[2 * i - 1], KEYS[2 * i]
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', holds, '-inf', now)) do
    local held = redis.call('HGET', account, 'h:' .. id)
    if held then
      redis.call('HINCRBYFLOAT', account, 'reserved', -tonumber(held))
      redis.call('HDEL', account, 'h:' .. id)
      expired = expired + 1
    end
  end
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  local spent = tonumber(redis.call('HGET', account, 'spent'))
  local reserved = math.max(tonumber(redis.call('HGET', account, 'reserved')), 0)
  if spent + reserved + amount > tonumber(ARGV[3 + 3 * i - 2]) then
    return {'exceeded', tostring(i), tostring(spent), tostring(reserved), tostring(expired)}
  end
end
for i = 1, n do
  local account, holds = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBYFLOAT', account, 'reserved', amount)
  redis.call('HSET', account, 'h:' .. ARGV[2], ARGV[1])
  redis.call('ZADD', holds, now + tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIRE', account, ARGV[3 + 3 * i])
  redis.call('EXPIRE', holds, ARGV[3 + 3 * i])
end
return {'ok', tostring(expired)}
""")

# KEYS: marker, then (account, holds) per budget. ARGV: id, actual cost, marker ttl s, and
# '1' to open a missing account with this cost (no ledger could seed it), then each account's
# key ttl s.
# Returns each account's spend after booking ('' for an account left to the ledger to seed).
_SETTLE = LuaScript("""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then return {'duplicate'} end
local spent = {'ok'}
for i = 1, (#KEYS - 1) / 2 do
  local account, holds = KEYS[2 * i], KEYS[2 * i + 1]
  local held = redis.call('HGET', account, 'h:' .. ARGV[1])
  if held then
    local left = tonumber(redis.call('HINCRBYFLOAT', account, 'reserved', -tonumber(held)))
    -- float residue must not read as a standing hold
    if left < 1e-9 then redis.call('HSET', account, 'reserved', '0') end
    redis.call('HDEL', account, 'h:' .. ARGV[1])
    redis.call('ZREM', holds, ARGV[1])
  end
  if redis.call('HEXISTS', account, 'spent') == 1 then
    table.insert(spent, redis.call('HINCRBYFLOAT', account, 'spent', ARGV[2]))
  elseif ARGV[4] == '1' then
    redis.call('HSET', account, 'spent', ARGV[2], 'reserved', '0')
    redis.call('EXPIRE', account, ARGV[4 + i])
    table.insert(spent, ARGV[2])
  else
    -- never held (fail open) or lost with Redis' data: the ledger, which has this call,
    -- seeds the period at its next reservation
    table.insert(spent, '')
  end
end
return spent
""")


class RedisBudget(BudgetBook):
    """Daily and monthly limits, globally and per tag, shared through Redis.

    Args:
        budgets: The limits.
        connection: The Redis server.
        timezone: Where days and months begin.
        ledger: Seeds a period's spend when Redis has none for it.
        alerts: Told how much of a budget is used after each settlement.
        fail_open: Let calls through, with a warning, while Redis is unreachable (default:
            refuse them: a budget nobody can check is not a budget).
        hold_ttl: Seconds before an unsettled hold (its replica crashed) is dropped.
        clock: Current time, for periods.

    """

    def __init__(
        self,
        budgets: Sequence[Budget],
        connection: RedisConnection,
        *,
        timezone: str = "UTC",
        ledger: SpendSource | None = None,
        alerts: BudgetAlerts | None = None,
        fail_open: bool = False,
        hold_ttl: float = DEFAULT_HOLD_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._budgets = check_budgets(budgets)
        self.timezone = zone(timezone)
        self.connection = connection
        self.fail_open = fail_open
        self.hold_ttl = hold_ttl
        self._ledger = ledger
        self._alerts = alerts
        self._clock = clock
        self._open: set[int | str] = set()
        self._pending: deque[tuple[BudgetReservation, float]] = deque()
        self._writer: asyncio.Task[None] | None = None

    @override
    def __repr__(self) -> str:
        names = [budget.name for budget in self._budgets]
        return f"RedisBudget({names}, redis={self.connection.label!r}, fail_open={self.fail_open})"

    @property
    @override
    def budgets(self) -> tuple[Budget, ...]:
        return self._budgets

    @property
    def unsettled(self) -> int:
        """Settlements not yet written to Redis."""
        return len(self._pending)

    @override
    async def hold(self, amount: float, tags: Mapping[str, str]) -> BudgetReservation:
        now = self._clock()
        accounts = tuple(
            (budget, period_key(budget.period, now, self.timezone))
            for budget in self._budgets
            if budget.applies_to(tags)
        )
        reservation = BudgetReservation(uuid.uuid4().hex, amount, accounts)
        self._start_writer()
        if accounts:
            try:
                await self._reserve(reservation, now)
            except RedisUnavailable as unavailable:
                if not self.fail_open:
                    if unavailable.attempted:
                        # The hold may have been booked with its reply lost: release it.
                        self._pending.append((reservation, 0.0))
                        self._start_writer()
                    raise BudgetExceededError(
                        f"the shared budget cannot be checked: Redis at {self.connection.label} "
                        "is unavailable (budgets fail closed; set LLM_BUDGET_FAIL_OPEN=true to "
                        "let calls through meanwhile)",
                        code="budget_unavailable",
                    ) from None
                _log.warning("llm.budget.fail_open", budgets=[b.name for b, _ in accounts])
        self._open.add(reservation.id)
        return reservation

    @override
    def settle(self, reservation: BudgetReservation, actual: float) -> None:
        if reservation.id not in self._open:
            return
        self._open.discard(reservation.id)
        if reservation.accounts:
            self._pending.append((reservation, actual))
            self._start_writer()

    @override
    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every settlement made so far is written (while Redis is down: until it
        is back, or ``timeout`` seconds have passed; what is left is then logged).
        """
        try:
            async with asyncio.timeout(timeout):
                while self._pending:
                    self._start_writer()
                    if self._writer is not None:
                        await asyncio.shield(self._writer)
        except TimeoutError:
            _log.warning("llm.budget.unsettled", settlements=len(self._pending))

    async def status(self) -> list[BudgetStatus]:
        """Every budget in the current period, as Redis has it (unexpired holds included)."""
        now = self._clock()
        result = []
        for budget in self._budgets:
            key = period_key(budget.period, now, self.timezone)
            account = self._keys(budget, key)[0]
            spent, reserved = await self.connection.run(partial(_read_account, account=account))
            result.append(
                BudgetStatus(
                    budget.name, key, budget.limit, float(spent or 0), float(reserved or 0)
                )
            )
        return result

    async def _reserve(self, reservation: BudgetReservation, now: datetime) -> None:
        seeds = [""] * len(reservation.accounts)
        for _ in range(2):
            keys, args = [], [repr(reservation.amount), reservation.id, int(self.hold_ttl * 1000)]
            for (budget, key), seed in zip(reservation.accounts, seeds, strict=True):
                keys += self._keys(budget, key)
                args += [repr(budget.limit), seed, self._key_ttl(budget, now)]
            answer = await self.connection.script(_RESERVE, keys, args)
            if answer[0] == "ok":
                if int(answer[1]):
                    _log.warning("llm.budget.holds_expired", holds=int(answer[1]))
                return
            if answer[0] == "exceeded":
                budget, key = reservation.accounts[int(answer[1]) - 1]
                spent, reserved = float(answer[2]), float(answer[3])
                raise BudgetExceededError(
                    f"budget {budget.name} ({key}) would be exceeded: limit "
                    f"${budget.limit:.4f}, spent ${spent:.4f}, reserved ${reserved:.4f}, "
                    f"this request up to ${reservation.amount:.4f}",
                    code="budget_exceeded",
                )
            for index in answer[1:]:
                budget, key = reservation.accounts[int(index) - 1]
                seeds[int(index) - 1] = repr(await self._seed(budget, now))
        raise RedisUnavailable(
            "the budget's books vanished while they were being seeded", attempted=True
        )

    async def _seed(self, budget: Budget, now: datetime) -> float:
        if self._ledger is None:
            return 0.0
        since, until = period_bounds(budget.period, now, self.timezone)
        spent = await asyncio.to_thread(
            self._ledger.spend, since=since, until=until, tags=budget.tags or None
        )
        key = period_key(budget.period, now, self.timezone)
        _log.info("llm.budget.loaded", budget=budget.name, period=key, spent_usd=spent)
        return spent

    def _start_writer(self) -> None:
        writer = self._writer
        if not self._pending or (
            writer is not None and not writer.done() and not writer.get_loop().is_closed()
        ):
            return
        self._writer = spawn(self._write())

    async def _write(self) -> None:
        while self._pending:
            reservation, actual = self._pending[0]
            keys = [self.connection.key("{budget}", "settled", str(reservation.id))]
            ttls = []
            for budget, key in reservation.accounts:
                keys += self._keys(budget, key)
                ttls.append(self._key_ttl(budget, self._clock()))
            try:
                answer = await self.connection.script(
                    _SETTLE,
                    keys,
                    [
                        reservation.id,
                        repr(actual),
                        _SETTLED_TTL,
                        "0" if self._ledger else "1",
                        *ttls,
                    ],
                )
            except RedisUnavailable:
                await asyncio.sleep(max(self.connection.retry_in(), 0.05))
                continue
            self._pending.popleft()
            if answer[0] == "ok":
                self._alert(reservation, answer[1:])

    def _alert(self, reservation: BudgetReservation, spent: Sequence[Any]) -> None:
        if self._alerts is None:
            return
        for (budget, key), value in zip(reservation.accounts, spent, strict=True):
            if value != "" and budget.limit > 0:
                self._alerts.budget_used(budget.name, key, float(value) / budget.limit)

    def _keys(self, budget: Budget, key: str) -> list[str]:
        account = self.connection.key("{budget}", budget.name, key)
        return [account, f"{account}:holds"]

    def _key_ttl(self, budget: Budget, now: datetime) -> int:
        end = period_bounds(budget.period, now, self.timezone)[1]
        return int((end - now).total_seconds()) + _KEEP_AFTER_PERIOD


async def _read_account(client: Redis, *, account: str) -> list[Any]:
    return list(await client.hmget(account, ["spent", "reserved"]))
