"""Many prompts through one client, safely: bounded concurrency, per-item errors, budget stop.

Every call goes through ``client.generate_text``, so the client's rate limits, retries,
fallbacks, budgets, ledger and cache apply to each item exactly as to a single call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from aiecs_llm.client.base import BaseLLMClient
from aiecs_llm.errors import BudgetExceededError, ConfigurationError, LLMClientError
from aiecs_llm.types import LLMMessage, LLMResponse

Status = Literal["ok", "error", "not_run"]
_log = structlog.get_logger("aiecs_llm.client.batch")


@dataclass(frozen=True)
class BatchRequest:
    """One prompt of a batch; ``None`` fields take the client's defaults."""

    id: str
    """The caller's name for the item; results carry it back."""
    messages: Sequence[LLMMessage]
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    """Further keyword arguments for ``generate_text`` (``top_p``, ``tags``, ``timeout``, ...)."""


@dataclass(frozen=True)
class BatchResult:
    """What became of one request.

    ``ok``: ``response`` is set. ``error``: ``error`` says why it failed. ``not_run``: nothing
    was sent because the budget ran out; ``error`` is the ``BudgetExceededError`` for the item
    the budget refused, None for the items never started after it.
    """

    id: str
    response: LLMResponse | None
    error: LLMClientError | None
    status: Status


@dataclass(frozen=True)
class BatchProgress:
    """Counts after an item finished. ``done`` is ``ok + errors + not_run``."""

    done: int
    ok: int
    errors: int
    not_run: int
    total: int
    cost: float
    """USD spent so far (answers without a known price count 0)."""
    tokens: int
    """Prompt plus completion tokens so far."""


class _Tally:
    """The running counts, and the callbacks told about each result."""

    def __init__(
        self,
        total: int,
        progress: Callable[[BatchProgress], None] | None,
        on_result: Callable[[int, BatchResult], None] | None,
    ) -> None:
        self.total = total
        self.counts = {"ok": 0, "error": 0, "not_run": 0}
        self.cost = 0.0
        self.tokens = 0
        self._progress = progress
        self._on_result = on_result

    def record(self, index: int, result: BatchResult) -> None:
        self.counts[result.status] += 1
        if result.response is not None:
            self.cost += result.response.cost_estimate or 0.0
            self.tokens += result.response.tokens_used or 0
        if self._on_result is not None:
            self._on_result(index, result)

    def report(self) -> None:
        if self._progress is not None:
            self._progress(self.snapshot())

    def snapshot(self) -> BatchProgress:
        ok, errors, not_run = self.counts["ok"], self.counts["error"], self.counts["not_run"]
        return BatchProgress(
            done=ok + errors + not_run,
            ok=ok,
            errors=errors,
            not_run=not_run,
            total=self.total,
            cost=self.cost,
            tokens=self.tokens,
        )


async def batch_generate(
    client: BaseLLMClient,
    requests: Iterable[BatchRequest],
    *,
    concurrency: int = 8,
    progress: Callable[[BatchProgress], None] | None = None,
    on_result: Callable[[int, BatchResult], None] | None = None,
) -> list[BatchResult]:
    """Send every request through ``client.generate_text``; results in input order.

    At most ``concurrency`` calls are in flight. An item that fails gets its error in its
    result and the batch goes on. When the budget refuses a call, no further item is started:
    calls in flight finish, and every item not started is ``not_run``. Cancelling the batch
    cancels the calls in flight.

    Args:
        client: the client every call goes through.
        requests: the items; read once, at the start.
        concurrency: calls in flight at most.
        progress: called with the counts after each item (and once after the items left
            unrun by a budget stop).
        on_result: called with ``(input index, result)`` as soon as each item has its
            result, e.g. to save it before the batch ends.

    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError("concurrency must be a whole number >= 1")
    items = list(requests)
    results: list[BatchResult | None] = [None] * len(items)
    tally = _Tally(len(items), progress, on_result)
    pending = iter(range(len(items)))
    stopped = False

    async def worker() -> None:
        nonlocal stopped
        # The check and the next() have no await between them, so no item starts after a stop.
        while not stopped and (index := next(pending, None)) is not None:
            result = await _run_one(client, items[index])
            if isinstance(result.error, BudgetExceededError) and not stopped:
                stopped = True
                _log.warning("llm.batch.budget_stopped", item=result.id)
            results[index] = result
            tally.record(index, result)
            tally.report()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(items))):
            group.create_task(worker())

    unrun = [index for index, result in enumerate(results) if result is None]
    for index in unrun:
        skipped = BatchResult(items[index].id, None, None, "not_run")
        results[index] = skipped
        tally.record(index, skipped)
    if unrun:
        tally.report()
    final = tally.snapshot()
    _log.info(
        "llm.batch.finished",
        total=final.total,
        ok=final.ok,
        errors=final.errors,
        not_run=final.not_run,
        cost_usd=final.cost,
        tokens=final.tokens,
    )
    return [result for result in results if result is not None]


async def _run_one(client: BaseLLMClient, request: BatchRequest) -> BatchResult:
    options = dict(request.params)
    if request.temperature is not None:  # otherwise the client's own default applies
        options["temperature"] = request.temperature
    try:
        response = await client.generate_text(
            request.messages, model=request.model, max_tokens=request.max_tokens, **options
        )
    except BudgetExceededError as error:
        return BatchResult(request.id, None, error, "not_run")
    except LLMClientError as error:
        return BatchResult(request.id, None, error, "error")
    except Exception as exc:  # noqa: BLE001 - the batch boundary: one item's bug must not end
        # the others. The item's error keeps the original, type and all, as its __cause__.
        crashed = LLMClientError(f"{type(exc).__name__}: {exc}")
        crashed.__cause__ = exc
        _log.error("llm.batch.item_crashed", item=request.id, error=type(exc).__name__)
        return BatchResult(request.id, None, crashed, "error")
    return BatchResult(request.id, response, None, "ok")
