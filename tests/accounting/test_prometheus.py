"""Prometheus export: types, labels and values parsed back from the exposition text."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.accounting.prometheus import CONTENT_TYPE, prometheus_registry, render_metrics
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.resilience.breaker import CircuitBreaker, Route
from aiecs_llm.resilience.keys import KeyPool
from tests.fake_clock import FakeClock

try:
    import prometheus_client
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the optional extra is not installed: only the "missing" tests run
    prometheus_client = None

needs_client = pytest.mark.skipif(
    prometheus_client is None, reason="pip install 'aiecs-llm[prometheus]'"
)


def rec(**fields: object) -> RequestRecord:
    values: dict[str, object] = {"provider": "openai", "model": "gpt-4o-mini"}
    values.update(fields)
    return RequestRecord.model_validate(values)


def fed_monitor() -> LLMMonitor:
    monitor = LLMMonitor()
    monitor.record(
        rec(
            prompt_tokens=100,
            completion_tokens=50,
            cached_tokens=20,
            cost=0.25,
            latency=1.0,
            retries=2,
        )
    )
    monitor.record(
        rec(
            provider="anthropic",
            model="claude-sonnet-4",
            stream=True,
            prompt_tokens=10,
            completion_tokens=40,
            reasoning_tokens=30,
            cost=0.5,
            latency=3.0,
            time_to_first_chunk=0.5,
            fallback_from="gpt-4o",
        )
    )
    monitor.record(rec(prompt_tokens=1, completion_tokens=1, cost=0.0, cache_hit=True, latency=2.0))
    monitor.record(rec(outcome="error", error_class="RateLimitError", latency=4.0))
    monitor.record(rec(outcome="cancelled"))
    monitor.record(rec(provider="custom", model="mystery", prompt_tokens=3, completion_tokens=4))
    return monitor


def scrape(monitor: LLMMonitor, **kwargs: str) -> dict[str, tuple[str, dict[tuple, float]]]:
    """Family name -> (type, {(sample name, sorted labels): value})."""
    text = render_metrics(monitor, **kwargs).decode()
    return {
        family.name: (
            family.type,
            {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for sample in family.samples
            },
        )
        for family in text_string_to_metric_families(text)
    }


@needs_client
def test_counters_carry_types_labels_and_values() -> None:
    families = scrape(fed_monitor())
    assert families["aiecs_llm_requests"] == (
        "counter",
        {
            ("aiecs_llm_requests_total", (("outcome", "success"),)): 4.0,
            ("aiecs_llm_requests_total", (("outcome", "error"),)): 1.0,
            ("aiecs_llm_requests_total", (("outcome", "cancelled"),)): 1.0,
        },
    )
    assert families["aiecs_llm_errors"] == (
        "counter",
        {("aiecs_llm_errors_total", (("error_class", "RateLimitError"),)): 1.0},
    )
    assert families["aiecs_llm_tokens"] == (
        "counter",
        {
            ("aiecs_llm_tokens_total", (("kind", "prompt"),)): 114.0,
            ("aiecs_llm_tokens_total", (("kind", "completion"),)): 95.0,
            ("aiecs_llm_tokens_total", (("kind", "cached"),)): 20.0,
            ("aiecs_llm_tokens_total", (("kind", "reasoning"),)): 30.0,
        },
    )
    cost_type, cost = families["aiecs_llm_cost_usd"]
    assert cost_type == "counter"
    assert cost == {
        (
            "aiecs_llm_cost_usd_total",
            (("model", "claude-sonnet-4"), ("provider", "anthropic")),
        ): 0.5,
        ("aiecs_llm_cost_usd_total", (("model", "gpt-4o-mini"), ("provider", "openai"))): 0.25,
    }
    for name, value in {
        "retries": 2.0,
        "fallbacks": 1.0,
        "cache_hits": 1.0,
        "cache_misses": 5.0,
        "unpriced_requests": 1.0,
    }.items():
        assert families[f"aiecs_llm_{name}"] == (
            "counter",
            {(f"aiecs_llm_{name}_total", ()): value},
        ), name


@needs_client
def test_latencies_are_summaries_with_quantiles_count_and_sum() -> None:
    families = scrape(fed_monitor())
    kind, latency = families["aiecs_llm_latency_seconds"]
    assert kind == "summary"
    # Latencies 1, 3, 2, 4: sorted 1, 2, 3, 4.
    assert latency == {
        ("aiecs_llm_latency_seconds", (("quantile", "0.5"),)): 2.5,
        ("aiecs_llm_latency_seconds", (("quantile", "0.95"),)): pytest.approx(3.85),
        ("aiecs_llm_latency_seconds", (("quantile", "0.99"),)): pytest.approx(3.97),
        ("aiecs_llm_latency_seconds_count", ()): 4.0,
        ("aiecs_llm_latency_seconds_sum", ()): 10.0,
    }
    kind, ttfc = families["aiecs_llm_time_to_first_chunk_seconds"]
    assert kind == "summary"
    assert ttfc == {
        ("aiecs_llm_time_to_first_chunk_seconds", (("quantile", "0.5"),)): 0.5,
        ("aiecs_llm_time_to_first_chunk_seconds", (("quantile", "0.95"),)): 0.5,
        ("aiecs_llm_time_to_first_chunk_seconds_count", ()): 1.0,
        ("aiecs_llm_time_to_first_chunk_seconds_sum", ()): 0.5,
    }


@needs_client
def test_an_empty_monitor_exports_zeros_and_no_quantiles() -> None:
    families = scrape(LLMMonitor())
    assert (
        families["aiecs_llm_requests"][1][("aiecs_llm_requests_total", (("outcome", "success"),))]
        == 0.0
    )
    assert families["aiecs_llm_errors"] == ("counter", {})
    assert families["aiecs_llm_latency_seconds"] == (
        "summary",
        {("aiecs_llm_latency_seconds_count", ()): 0.0, ("aiecs_llm_latency_seconds_sum", ()): 0.0},
    )
    assert not any(name.startswith("aiecs_llm_circuit") for name in families)
    assert "aiecs_llm_keys" not in families


@needs_client
def test_circuits_and_keys_are_exported_when_state_is_attached() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=30, clock=clock)
    broken, fine = Route("openai", "gpt-4o"), Route("anthropic", "claude-sonnet-4")
    breaker.record_failure(broken)
    breaker.record_success(fine)
    pool = KeyPool("openai", ["sk-test-aaaaaaaaaaaaaaaa", "sk-test-bbbbbbbbbbbbbbbb"], clock=clock)
    pool.rejected("sk-test-aaaaaaaaaaaaaaaa")
    monitor = LLMMonitor()
    monitor.attach_state(
        lambda: {"circuits": breaker.snapshot(), "keys": {"openai": pool.snapshot()}}
    )

    families = scrape(monitor)
    assert families["aiecs_llm_circuit_open"] == (
        "gauge",
        {
            ("aiecs_llm_circuit_open", (("route", "openai/gpt-4o"),)): 1.0,
            ("aiecs_llm_circuit_open", (("route", "anthropic/claude-sonnet-4"),)): 0.0,
        },
    )
    assert families["aiecs_llm_circuit_opened"] == (
        "counter",
        {
            ("aiecs_llm_circuit_opened_total", (("route", "openai/gpt-4o"),)): 1.0,
            ("aiecs_llm_circuit_opened_total", (("route", "anthropic/claude-sonnet-4"),)): 0.0,
        },
    )
    assert families["aiecs_llm_keys"] == (
        "gauge",
        {
            ("aiecs_llm_keys", (("provider", "openai"), ("state", "active"))): 1.0,
            ("aiecs_llm_keys", (("provider", "openai"), ("state", "cooling"))): 0.0,
            ("aiecs_llm_keys", (("provider", "openai"), ("state", "retired"))): 1.0,
        },
    )
    # The cool-down passes: the route is half-open, which lets one probe through.
    clock.advance(31)
    assert (
        scrape(monitor)["aiecs_llm_circuit_open"][1][
            ("aiecs_llm_circuit_open", (("route", "openai/gpt-4o"),))
        ]
        == 0.0
    )
    assert b"sk-test" not in render_metrics(monitor)


@needs_client
def test_the_registry_reads_the_monitor_at_scrape_time() -> None:
    monitor = LLMMonitor()
    registry = prometheus_registry(monitor, prefix="svc_llm")
    assert isinstance(registry, prometheus_client.CollectorRegistry)
    monitor.record(rec(cost=1.5))
    assert registry.get_sample_value("svc_llm_requests_total", {"outcome": "success"}) == 1.0
    assert (
        registry.get_sample_value(
            "svc_llm_cost_usd_total", {"provider": "openai", "model": "gpt-4o-mini"}
        )
        == 1.5
    )
    monitor.record(rec(cost=1.5))
    assert registry.get_sample_value("svc_llm_requests_total", {"outcome": "success"}) == 2.0


@needs_client
def test_content_type_is_the_text_format() -> None:
    assert CONTENT_TYPE == prometheus_client.exposition.CONTENT_TYPE_PLAIN_0_0_4
    families = scrape(fed_monitor(), prefix="x")
    assert "x_requests" in families


def test_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "prometheus_client"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigurationError, match=r"pip install 'aiecs-llm\[prometheus\]'"):
        render_metrics(LLMMonitor())
    with pytest.raises(ConfigurationError, match=r"aiecs-llm\[prometheus\]"):
        prometheus_registry(LLMMonitor())


def test_the_library_imports_without_prometheus_client() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None  # as if the extra were not installed
        import aiecs_llm, aiecs_llm.accounting.alerts, aiecs_llm.accounting.monitor
        import aiecs_llm.accounting.prometheus
        from aiecs_llm.errors import ConfigurationError
        try:
            aiecs_llm.accounting.prometheus.render_metrics(aiecs_llm.accounting.monitor.LLMMonitor())
        except ConfigurationError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'aiecs-llm[prometheus]'" in done.stdout


def test_importing_the_library_does_not_import_prometheus_client() -> None:
    code = (
        "import sys, aiecs_llm, aiecs_llm.accounting.alerts, aiecs_llm.accounting.monitor\n"
        "import aiecs_llm.accounting.prometheus\n"
        "print('prometheus_client' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
