"""Prometheus exposition of an ``LLMMonitor`` (optional extra: ``aiecs-llm[prometheus]``).

The collector reads ``monitor.get_metrics()`` at scrape time, so nothing is counted twice and
the monitor stays the one source of truth. ``prometheus_client`` is imported only here, and only
when a function of this module is called: importing the module, or the rest of the library,
never needs it.

Exported (with the default prefix ``aiecs_llm``)::

    aiecs_llm_requests_total{outcome}              counter  success | error | cancelled
    aiecs_llm_errors_total{error_class}            counter  failed calls by error class
    aiecs_llm_tokens_total{kind}                   counter  prompt | completion | cached | reasoning
    aiecs_llm_cost_usd_total{provider,model}       counter  USD of priced calls
    aiecs_llm_unpriced_requests_total              counter  calls with tokens but no known price
    aiecs_llm_retries_total, aiecs_llm_fallbacks_total
    aiecs_llm_cache_hits_total, aiecs_llm_cache_misses_total
    aiecs_llm_latency_seconds{quantile}            summary  0.5/0.95/0.99 over recent calls
    aiecs_llm_time_to_first_chunk_seconds{quantile} summary 0.5/0.95 over recent streams
    aiecs_llm_circuit_open{route}                  gauge    1 while the route is open (state)
    aiecs_llm_circuit_opened_total{route}          counter  times the route opened (state)
    aiecs_llm_keys{provider,state}                 gauge    keys per state (state)

The last three appear only when a state is attached (``LLMMonitor.attach_state``). Quantiles
are omitted while nothing has been measured; ``_count`` and ``_sum`` are always there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.errors import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["CONTENT_TYPE", "prometheus_registry", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of what ``render_metrics`` returns."""

_INSTALL_HINT = (
    "Prometheus export needs the prometheus_client package: pip install 'aiecs-llm[prometheus]'"
)
_OUTCOMES = ("success", "error", "cancelled")
_TOKEN_KINDS = ("prompt", "completion", "cached", "reasoning")
_LATENCY_QUANTILES = (("0.5", "latency_p50"), ("0.95", "latency_p95"), ("0.99", "latency_p99"))
_TTFC_QUANTILES = (("0.5", "time_to_first_chunk_p50"), ("0.95", "time_to_first_chunk_p95"))


def prometheus_registry(monitor: LLMMonitor, *, prefix: str = "aiecs_llm") -> CollectorRegistry:
    """A registry whose only collector reads ``monitor`` at each scrape.

    Args:
        monitor: The monitor to export.
        prefix: Prepended to every metric name, followed by ``_``.

    Returns:
        A new ``prometheus_client.CollectorRegistry``, ready for ``generate_latest`` or
        ``start_http_server(registry=...)``.

    Raises:
        ConfigurationError: ``prometheus_client`` is not installed.

    """
    try:
        from prometheus_client import CollectorRegistry
    except ImportError as exc:
        raise ConfigurationError(_INSTALL_HINT) from exc

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_MonitorCollector(monitor, prefix))
    return registry


def render_metrics(monitor: LLMMonitor, *, prefix: str = "aiecs_llm") -> bytes:
    """The monitor's metrics in the Prometheus text format (serve with ``CONTENT_TYPE``).

    Args:
        monitor: The monitor to export.
        prefix: Prepended to every metric name, followed by ``_``.

    Returns:
        The exposition text, UTF-8 encoded.

    Raises:
        ConfigurationError: ``prometheus_client`` is not installed.

    """
    registry = prometheus_registry(monitor, prefix=prefix)
    from prometheus_client import generate_latest

    return generate_latest(registry)


class _MonitorCollector:
    """A ``prometheus_client`` collector over one monitor (duck-typed: ``collect`` only)."""

    def __init__(self, monitor: LLMMonitor, prefix: str) -> None:
        self._monitor = monitor
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        m = self._monitor.get_metrics()
        p = self._prefix

        requests = CounterMetricFamily(f"{p}_requests", "Calls by outcome.", labels=["outcome"])
        outcome_counts = {
            "success": m["successful_requests"],
            "error": m["failed_requests"],
            "cancelled": m["cancelled_requests"],
        }
        for outcome in _OUTCOMES:
            requests.add_metric([outcome], outcome_counts[outcome])
        yield requests

        errors = CounterMetricFamily(
            f"{p}_errors", "Failed calls by error class.", labels=["error_class"]
        )
        for error_class, count in sorted(m["errors_by_class"].items()):
            errors.add_metric([error_class], count)
        yield errors

        tokens = CounterMetricFamily(
            f"{p}_tokens",
            "Tokens by kind; cached is part of prompt, reasoning part of completion.",
            labels=["kind"],
        )
        for kind in _TOKEN_KINDS:
            tokens.add_metric([kind], m[f"{kind}_tokens"])
        yield tokens

        cost = CounterMetricFamily(
            f"{p}_cost_usd", "USD spent on priced calls.", labels=["provider", "model"]
        )
        for provider, models in sorted(m["cost_by_provider_model"].items()):
            for model, usd in sorted(models.items()):
                cost.add_metric([provider, model], usd)
        yield cost

        for key, doc in (
            ("unpriced_requests", "Calls that used tokens of a model with no known price."),
            ("retries", "Attempts beyond the first, over all calls."),
            ("fallbacks", "Calls answered by another model than the one asked for."),
            ("cache_hits", "Calls answered from the response cache."),
            ("cache_misses", "Calls not answered from the response cache."),
        ):
            yield CounterMetricFamily(f"{p}_{key}", doc, value=m[key])

        yield _summary(
            f"{p}_latency_seconds",
            "Call latency; quantiles over recent calls.",
            m,
            "latency",
            _LATENCY_QUANTILES,
        )
        yield _summary(
            f"{p}_time_to_first_chunk_seconds",
            "Seconds to a stream's first chunk; quantiles over recent streams.",
            m,
            "time_to_first_chunk",
            _TTFC_QUANTILES,
        )
        if "circuits" in m:
            yield from _circuit_metrics(p, m["circuits"])
        if "keys" in m:
            yield _key_metric(p, m["keys"])


def _summary(
    name: str,
    doc: str,
    metrics: Mapping[str, Any],
    key: str,
    quantiles: tuple[tuple[str, str], ...],
) -> Metric:
    from prometheus_client.core import Metric
    from prometheus_client.samples import Sample

    # SummaryMetricFamily has no quantile samples; a summary with quantiles is built by hand.
    summary = Metric(name, doc, "summary")
    for quantile, source in quantiles:
        if (value := metrics[source]) is not None:
            summary.samples.append(Sample(name, {"quantile": quantile}, value))
    summary.samples.append(Sample(f"{name}_count", {}, metrics[f"{key}_count"]))
    summary.samples.append(Sample(f"{name}_sum", {}, metrics[f"{key}_sum"]))
    return summary


def _circuit_metrics(prefix: str, circuits: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    # Half-open lets one probe through and is reported as not open.
    is_open = GaugeMetricFamily(
        f"{prefix}_circuit_open", "1 while the route's circuit is open.", labels=["route"]
    )
    opened = CounterMetricFamily(
        f"{prefix}_circuit_opened", "Times the route's circuit opened.", labels=["route"]
    )
    for route, health in sorted(circuits.items()):
        is_open.add_metric([route], 1.0 if health.get("state") == "open" else 0.0)
        opened.add_metric([route], health.get("opened_count", 0))
    yield is_open
    yield opened


def _key_metric(prefix: str, keys: Mapping[str, list[Mapping[str, Any]]]) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        f"{prefix}_keys",
        "API keys by state (active, cooling, retired).",
        labels=["provider", "state"],
    )
    for provider, states in sorted(keys.items()):
        counts = Counter(str(key.get("state")) for key in states)
        for state in ("active", "cooling", "retired"):
            family.add_metric([provider, state], counts.pop(state, 0))
        for state, count in sorted(counts.items()):
            family.add_metric([provider, state], count)
    return family
