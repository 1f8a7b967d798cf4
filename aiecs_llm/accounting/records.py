"""``RequestRecord``: what one call did and cost, as the ledger, the budget and the metrics see it.

One record per call (not per attempt): retries and fallbacks are counted in it. Records carry
no prompt text and no keys.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["success", "error", "cancelled"]


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class RequestRecord(BaseModel):
    """One call, whatever its outcome."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=_new_id)
    """Unique per call."""
    started_at: datetime = Field(default_factory=_now)
    """When the call started (UTC)."""
    provider: str
    """The provider that answered (or was last tried)."""
    model: str
    """The model that answered (or was last tried), as the provider named it."""
    requested_model: str | None = None
    """The model string the caller asked for."""
    stream: bool = False
    outcome: Outcome = "success"
    error_class: str | None = None
    """The ``LLMClientError`` subclass for a failed call."""
    status_code: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens served from the provider's cache (included in ``prompt_tokens``)."""
    reasoning_tokens: int | None = None
    """Hidden reasoning tokens (included in ``completion_tokens``)."""
    cost: float | None = None
    """USD charged for this call; 0 for a cache hit, None when the model has no known price."""
    latency: float | None = None
    """Seconds from the start of the call to its end."""
    time_to_first_chunk: float | None = None
    retries: int = 0
    """Attempts beyond the first, over all models tried."""
    fallback_from: str | None = None
    """The model first asked for, when another one answered."""
    cache_hit: bool = False
    cost_estimated: bool = False
    """``cost`` is the budget hold's worst case, not the provider's figure: the call failed or
    was cancelled after its request reached the provider, which bills it all the same."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Caller tags: ``service``, ``task_id``, ``user``, ... (for budgets and reports)."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens (0 where unknown)."""
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)
