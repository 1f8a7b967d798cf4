"""A circuit breaker per route, so that a broken provider, model or key stops getting traffic.

After ``failure_threshold`` consecutive failures a route *opens*: ``allow()`` says no for
``cooldown`` seconds and callers can go elsewhere or fail fast. Then the route is *half-open*:
exactly one caller is let through as a probe. Its success closes the route; its failure opens it
for another cooldown. A probe whose outcome is never reported (its caller was cancelled) is
given up after one cooldown, so that the route cannot stay wedged half-open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import structlog

from aiecs_llm.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "DEFAULT_BREAKER_COOLDOWN",
    "DEFAULT_FAILURE_THRESHOLD",
    "BreakerState",
    "CircuitBreaker",
    "Route",
    "RouteHealth",
]

DEFAULT_FAILURE_THRESHOLD = 5
"""Consecutive failures that open a route."""
DEFAULT_BREAKER_COOLDOWN = 30.0
"""Seconds an open route rests before one probe is let through."""

BreakerState = Literal["closed", "open", "half_open"]

_log = structlog.get_logger("aiecs_llm.resilience.breaker")
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{8}")


@dataclass(frozen=True, slots=True)
class Route:
    """What can fail independently: a model at a provider, optionally through one key.

    Attributes:
        provider: Provider name, e.g. ``openai``.
        model: Model name, e.g. ``gpt-4o-mini``.
        key_id: The key's ``aiecs_llm.config.secrets.fingerprint``, never the key itself.

    Raises:
        ValueError: ``key_id`` is not a fingerprint (it would end up in logs).

    """

    provider: str
    model: str
    key_id: str | None = None

    def __post_init__(self) -> None:
        if self.key_id is not None and not _FINGERPRINT.fullmatch(self.key_id):
            raise ValueError("Route.key_id must be a key fingerprint (redaction.fingerprint)")

    @property
    def label(self) -> str:
        """``provider/model`` plus ``@fingerprint`` when the route is per key."""
        base = f"{self.provider}/{self.model}"
        return base if self.key_id is None else f"{base}@{self.key_id}"


@dataclass(frozen=True, slots=True)
class RouteHealth:
    """One route as ``CircuitBreaker.snapshot()`` reports it.

    Attributes:
        state: ``closed``, ``open`` or ``half_open``.
        consecutive_failures: Failures since the last success.
        opened_count: How many times the route has opened (failed probes included).
        retry_in: Seconds until ``allow()`` can next say yes (0 if it would now).

    """

    state: BreakerState
    consecutive_failures: int
    opened_count: int
    retry_in: float


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_count: int = 0
    open_until: float | None = None  # None while closed; past it the route is half-open
    probe_since: float | None = None  # when the outstanding probe was let through


class CircuitBreaker:
    """Consecutive-failure circuit breaker over any number of routes.

    Args:
        failure_threshold: Consecutive failures that open a route (>= 1).
        cooldown: Seconds an open route rests before a probe; also how long an unreported
            probe holds the half-open route (> 0).
        clock: Time source.

    Raises:
        ValueError: A threshold below 1 or a cooldown that is not positive.

    """

    def __init__(
        self,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown: float = DEFAULT_BREAKER_COOLDOWN,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown <= 0:
            raise ValueError("cooldown must be > 0 seconds")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._circuits: dict[Route, _Circuit] = {}

    def allow(self, route: Route) -> bool:
        """Whether a call may go to ``route`` now.

        Closed: yes. Open within its cooldown: no. Half-open: yes for exactly one caller, the
        probe, until its outcome is reported (or one cooldown has passed); no for everyone else.
        """
        circuit = self._circuit(route)
        now = self._clock.monotonic()
        if circuit.open_until is None:
            return True
        if now < circuit.open_until or self._probe_outstanding(circuit, now):
            return False
        circuit.probe_since = now
        _log.debug("llm.breaker.probing", route=route.label)
        return True

    def record_success(self, route: Route) -> None:
        """A call to ``route`` succeeded: close the route and forget its failures."""
        circuit = self._circuit(route)
        was_open = circuit.open_until is not None
        circuit.failures = 0
        circuit.open_until = None
        circuit.probe_since = None
        if was_open:
            _log.info("llm.breaker.closed", route=route.label)

    def record_failure(self, route: Route) -> None:
        """A call to ``route`` failed in a way that says the route is unhealthy.

        Opens a closed route at the threshold and re-opens a half-open one (the probe failed).
        Late failures of calls let through before the route opened do not extend its cooldown.
        """
        circuit = self._circuit(route)
        now = self._clock.monotonic()
        circuit.failures += 1
        if circuit.open_until is None:
            if circuit.failures >= self.failure_threshold:
                self._open(route, circuit, now)
        elif now >= circuit.open_until:
            self._open(route, circuit, now)

    def state(self, route: Route) -> BreakerState:
        """``closed``, ``open`` (resting) or ``half_open`` (a probe may go or is out)."""
        circuit = self._circuits.get(route)
        if circuit is None or circuit.open_until is None:
            return "closed"
        return "open" if self._clock.monotonic() < circuit.open_until else "half_open"

    def retry_in(self, route: Route) -> float:
        """Seconds until ``allow(route)`` can say yes on time alone; 0 if it would now.

        For a half-open route whose probe is out, that is when the probe would be given up, an
        upper bound: a reported outcome frees the route sooner.
        """
        circuit = self._circuits.get(route)
        if circuit is None or circuit.open_until is None:
            return 0.0
        now = self._clock.monotonic()
        if now < circuit.open_until:
            return circuit.open_until - now
        if self._probe_outstanding(circuit, now) and circuit.probe_since is not None:
            return circuit.probe_since + self.cooldown - now
        return 0.0

    def snapshot(self) -> dict[str, RouteHealth]:
        """Every route seen so far, by ``Route.label``."""
        return {
            route.label: RouteHealth(
                state=self.state(route),
                consecutive_failures=circuit.failures,
                opened_count=circuit.opened_count,
                retry_in=self.retry_in(route),
            )
            for route, circuit in self._circuits.items()
        }

    def _circuit(self, route: Route) -> _Circuit:
        circuit = self._circuits.get(route)
        if circuit is None:
            circuit = self._circuits[route] = _Circuit()
        return circuit

    def _probe_outstanding(self, circuit: _Circuit, now: float) -> bool:
        return circuit.probe_since is not None and now - circuit.probe_since < self.cooldown

    def _open(self, route: Route, circuit: _Circuit, now: float) -> None:
        circuit.open_until = now + self.cooldown
        circuit.probe_since = None
        circuit.opened_count += 1
        _log.warning(
            "llm.breaker.opened",
            route=route.label,
            failures=circuit.failures,
            cooldown=self.cooldown,
        )
