"""Rotating between several API keys of one provider.

A key that hits a rate limit cools down for the time the provider asked (or a default) while the
others carry the traffic; a key the provider rejects (401/403) is retired for the life of the
pool. Keys never leave this module except through ``choose()``: logs, errors, ``repr`` and
snapshots name them by ``fingerprint`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog
from typing_extensions import override

from aiecs_llm.config.secrets import Secret, fingerprint
from aiecs_llm.errors import AuthenticationError, RateLimitError
from aiecs_llm.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["DEFAULT_KEY_COOLDOWN", "MAX_KEY_COOLDOWN", "KeyPool", "KeyState", "KeyStatus"]

DEFAULT_KEY_COOLDOWN = 60.0
MAX_KEY_COOLDOWN = 3600.0
"""The longest a 429 may rest a key, unless configured otherwise (``max_key_cooldown``)."""
"""Seconds a rate-limited key rests when the provider did not say how long (one RPM window)."""

KeyStatus = Literal["active", "cooling", "retired"]

_log = structlog.get_logger("aiecs_llm.resilience.keys")


@dataclass(frozen=True, slots=True)
class KeyState:
    """One key as ``KeyPool.snapshot()`` reports it, by fingerprint.

    Attributes:
        fingerprint: ``sha256:...`` label of the key (see ``aiecs_llm.config.secrets.fingerprint``).
        state: ``active``, ``cooling`` (rate-limited, back later) or ``retired`` (rejected).
        cooling_for: Seconds until a cooling key is usable again; 0 otherwise.
        uses: How many times ``choose()`` handed the key out.
        successes: How many calls with the key were reported as ``succeeded``.

    """

    fingerprint: str
    state: KeyStatus
    cooling_for: float
    uses: int
    successes: int


@dataclass(slots=True)
class _Key:
    # repr=False: this object must never be able to print its key, even in a traceback.
    secret: str = field(repr=False)
    fingerprint: str
    cooling_until: float = float("-inf")
    retired: bool = False
    uses: int = 0
    successes: int = 0


class KeyPool:
    """Several API keys for one provider; a rate-limited key cools down, a rejected key is retired.

    Args:
        provider: Provider name, used in logs and errors.
        keys: The keys, in order of preference for the first round. Duplicates are dropped.
        clock: Time source for cooldowns.
        default_cooldown: Seconds a key cools down after a 429 without ``retry_after``.
        max_cooldown: The longest rest any 429 can give a key, whatever the provider (or a
            broken or hostile server in its place) asked: a key is never benched for years.

    Raises:
        ValueError: No keys, a blank key, or a negative cooldown.

    """

    def __init__(
        self,
        provider: str,
        keys: Sequence[str],
        *,
        clock: Clock = SYSTEM_CLOCK,
        default_cooldown: float = DEFAULT_KEY_COOLDOWN,
        max_cooldown: float = MAX_KEY_COOLDOWN,
    ) -> None:
        # A lone str is a Sequence[str] too; iterating it would make one "key" per character.
        if isinstance(keys, str):
            raise TypeError("keys must be a sequence of keys, not a single string")
        if any(not key.strip() for key in keys):
            raise ValueError(f"a key for {provider} is blank")
        unique = list(dict.fromkeys(keys))
        if not unique:
            raise ValueError(f"a key pool for {provider} needs at least one key")
        if default_cooldown < 0:
            raise ValueError("default_cooldown must be >= 0 seconds")
        if not max_cooldown > 0:
            raise ValueError("max_cooldown must be > 0 seconds")
        self._max_cooldown = max_cooldown
        self._provider = provider
        self._clock = clock
        self._default_cooldown = default_cooldown
        self._keys = [_Key(secret=Secret(key), fingerprint=fingerprint(key)) for key in unique]
        self._by_secret = {entry.secret: entry for entry in self._keys}
        self._next = 0

    @property
    def provider(self) -> str:
        """The provider these keys belong to."""
        return self._provider

    def __len__(self) -> int:
        return len(self._keys)

    def has_usable_key(self) -> bool:
        """Whether ``choose()`` would return a key now (one is neither cooling nor retired)."""
        now = self._clock.monotonic()
        return any(not entry.retired and entry.cooling_until <= now for entry in self._keys)

    def choose(self) -> str:
        """The next usable key, round-robin over keys that are neither cooling nor retired.

        Raises:
            AuthenticationError: Every key has been rejected by the provider.
            RateLimitError: Every remaining key is cooling down; ``retry_after`` is the number of
                seconds until the first of them is usable again.

        """
        now = self._clock.monotonic()
        count = len(self._keys)
        for offset in range(count):
            index = (self._next + offset) % count
            entry = self._keys[index]
            if not entry.retired and entry.cooling_until <= now:
                self._next = (index + 1) % count
                entry.uses += 1
                return entry.secret
        remaining = [entry for entry in self._keys if not entry.retired]
        if not remaining:
            raise AuthenticationError(
                f"all {count} API keys for {self._provider} were rejected "
                f"({', '.join(entry.fingerprint for entry in self._keys)})",
                provider=self._provider,
            )
        wait = min(entry.cooling_until for entry in remaining) - now
        retired = count - len(remaining)
        raise RateLimitError(
            f"all {len(remaining)} usable API keys for {self._provider} are cooling down "
            f"after rate limits ({retired} retired); the first is usable again in {wait:.1f}s",
            provider=self._provider,
            retry_after=wait,
        )

    def rate_limited(self, key: str, retry_after: float | None) -> None:
        """Rest ``key`` after a 429: for ``retry_after`` seconds, or the default when None.

        A cooldown already running is never shortened; none is longer than ``max_cooldown``.
        """
        entry = self._entry(key)
        asked = self._default_cooldown if retry_after is None else retry_after
        if not math.isfinite(asked) or asked < 0:
            asked = self._default_cooldown
        rest = min(asked, self._max_cooldown)
        entry.cooling_until = max(entry.cooling_until, self._clock.monotonic() + rest)
        _log.info(
            "llm.key.cooling",
            provider=self._provider,
            key=entry.fingerprint,
            cooldown_seconds=round(rest, 3),
        )

    def rejected(self, key: str) -> None:
        """Retire ``key`` for good after a 401/403; logged once per key."""
        entry = self._entry(key)
        if entry.retired:
            return
        entry.retired = True
        _log.error(
            "llm.key.rejected",
            provider=self._provider,
            key=entry.fingerprint,
            keys_left=sum(1 for other in self._keys if not other.retired),
        )

    def succeeded(self, key: str) -> None:
        """Count a successful call made with ``key`` (reported in ``snapshot()``)."""
        self._entry(key).successes += 1

    def snapshot(self) -> list[KeyState]:
        """The state of every key, in pool order, by fingerprint."""
        now = self._clock.monotonic()
        return [self._state_of(entry, now) for entry in self._keys]

    @override
    def __repr__(self) -> str:
        states = self.snapshot()
        counts = {
            status: sum(1 for state in states if state.state == status)
            for status in ("active", "cooling", "retired")
        }
        return (
            f"KeyPool(provider={self._provider!r}, keys={len(states)}, "
            f"active={counts['active']}, cooling={counts['cooling']}, "
            f"retired={counts['retired']}, fingerprints={[s.fingerprint for s in states]})"
        )

    def _entry(self, key: str) -> _Key:
        entry = self._by_secret.get(key)
        if entry is None:
            raise ValueError(f"key {fingerprint(key)} is not in the {self._provider} key pool")
        return entry

    @staticmethod
    def _state_of(entry: _Key, now: float) -> KeyState:
        status: KeyStatus
        if entry.retired:
            status, cooling_for = "retired", 0.0
        elif entry.cooling_until > now:
            status, cooling_for = "cooling", entry.cooling_until - now
        else:
            status, cooling_for = "active", 0.0
        return KeyState(entry.fingerprint, status, cooling_for, entry.uses, entry.successes)
