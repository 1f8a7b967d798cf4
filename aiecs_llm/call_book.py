"""What is written down about each call, plain or streamed: the budget it reserves before it is
sent, and how it ended when it did not answer, in the accounting (metrics, ledger, budget,
alerts) and the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiecs_llm import _events
from aiecs_llm.budget import BudgetReservation
from aiecs_llm.calls import CallOwner, CallRequest
from aiecs_llm.errors import BudgetExceededError, LLMClientError
from aiecs_llm.types import LLMMessage


class CallBook:
    """Books one client's calls.

    Args:
        owner: the client, read on every call for its accounting, settings and ``log_content``.
        chain: the models that may answer a request, each of which the budget must allow.

    """

    def __init__(self, owner: CallOwner, chain: Callable[[CallRequest], list[str]]) -> None:
        self._owner = owner
        self._chain = chain

    async def reserve(self, request: CallRequest) -> BudgetReservation | None:
        """Reserve the call's worst-case cost; ``BudgetExceededError`` names the model asked for."""
        try:
            return await self._owner.accounting.reserve(
                models=self._chain(request),
                messages=request.messages,
                max_tokens=request.max_tokens,
                tags=request.tags,
                overrides=self._owner.settings.costs,
            )
        except BudgetExceededError as error:
            error.provider, _, error.model = request.primary_model.partition("/")
            raise

    def failed(
        self, request: CallRequest, error: BaseException, reservation: BudgetReservation | None
    ) -> None:
        """The one record of a call that did not answer."""
        accounting = self._owner.accounting
        if isinstance(error, LLMClientError):
            accounting.failed(request, error, reservation)
            self.log_failure(error, request)
        elif isinstance(error, Exception):  # a bug, ours or LiteLLM's: still an error
            accounting.failed(request, error, reservation)
        else:  # cancelled, or the consumer stopped early: still accounted
            accounting.failed(request, None, reservation)

    def log_failure(self, error: LLMClientError, request: CallRequest) -> None:
        """The call's failure event."""
        latency = time.monotonic() - request.started
        _events.request_failed(
            error, stream=request.stream, latency=latency, messages=self.logged(request)
        )

    def logged(self, request: CallRequest) -> tuple[LLMMessage, ...] | None:
        """The prompt as log events may show it: only when the client logs content."""
        return request.messages if self._owner.log_content else None
