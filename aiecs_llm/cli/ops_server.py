"""The operations interface of a container: ``/healthz``, ``/metrics`` and ``/usage`` over HTTP.

``aiecs-llm serve`` runs it on its own; a service can also mount it in its own process, where
``/metrics`` then counts the service's calls (``DEFAULT_MONITOR`` is per process, so in the
stand-alone server it sees only its own live health checks). ``/usage`` reads the shared
ledger, so it is the same either way.

aiohttp is imported only when an app is built, so importing this module stays cheap. No endpoint
sends a request to a provider except ``/healthz?live=1``, whose result is kept for
``LIVE_CHECK_TTL`` seconds so that a busy probe cannot run up a bill. The endpoints have no
authentication: the server binds to loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import DEFAULT_MONITOR, LLMMonitor
from aiecs_llm.accounting.prometheus import CONTENT_TYPE, render_metrics
from aiecs_llm.cli.ledger_access import existing_ledger, report_zone
from aiecs_llm.client.health import ProviderHealth, health_check
from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.providers import engine

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["LIVE_CHECK_TTL", "create_app", "serve"]

LIVE_CHECK_TTL = 30.0
"""Seconds a live health check result is served again before the providers are asked anew."""
SHUTDOWN_TIMEOUT = 10.0
"""Seconds requests in flight get to finish once the server is told to stop."""

_LIVE_VALUES = frozenset({"1", "true", "yes"})


def create_app(
    settings: LLMSettings | None = None, *, monitor: LLMMonitor | None = None
) -> web.Application:
    """The aiohttp application with the three endpoints.

    Args:
        settings: Keys, ledger path and timezone; ``LLMSettings.load()`` when omitted.
        monitor: What ``/metrics`` exports; the process's ``DEFAULT_MONITOR`` when omitted.

    Raises:
        ConfigurationError: aiohttp is not installed.

    """
    try:
        from aiohttp import web
    except ImportError as error:
        raise ConfigurationError(
            "the operations server needs aiohttp: pip install aiohttp"
        ) from error
    endpoints = _Endpoints(settings or LLMSettings.load(), monitor or DEFAULT_MONITOR)
    app = web.Application()
    app.router.add_get("/healthz", endpoints.healthz)
    app.router.add_get("/metrics", endpoints.metrics)
    app.router.add_get("/usage", endpoints.usage)
    app.on_startup.append(_warm_up)
    app.on_cleanup.append(endpoints.close)
    return app


async def _warm_up(_app: web.Application) -> None:
    # Before the socket takes traffic: the first live check then measures the request only,
    # not LiteLLM's import.
    await engine.load()


async def serve(
    app: web.Application,
    *,
    port: int,
    stop: asyncio.Event,
    host: str = "127.0.0.1",
    on_ready: Callable[[str], None] | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``app`` until ``stop`` is set, then finish the requests in flight and close.

    Args:
        app: From ``create_app()``.
        host: Interface to bind; loopback by default.
        port: TCP port; 0 picks a free one.
        stop: Set it (from a signal handler, say) to shut down gracefully.
        on_ready: Called with the base URL once the socket listens.
        access_log: Log each request with aiohttp's access logger (``aiohttp.access``).

    Raises:
        ConfigurationError: The address cannot be bound.

    """
    from aiohttp import web

    logger = logging.getLogger("aiohttp.access") if access_log else None
    runner = web.AppRunner(app, access_log=logger, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigurationError(f"cannot listen on {host}:{port}: {reason}") from None
        bound_host, bound_port = runner.addresses[0][:2]
        if on_ready is not None:
            on_ready(f"http://{_url_host(bound_host)}:{bound_port}")
        await stop.wait()
    finally:
        await runner.cleanup()


class _Endpoints:
    """The request handlers and what they share: settings, monitor, ledger, live results."""

    def __init__(self, settings: LLMSettings, monitor: LLMMonitor) -> None:
        self.settings = settings
        self.monitor = monitor
        self.ledger: UsageLedger | None = None
        self.live_report: tuple[float, dict[str, ProviderHealth]] | None = None
        self.live_lock = asyncio.Lock()
        self.ledger_lock = asyncio.Lock()

    async def healthz(self, request: web.Request) -> web.Response:
        """``{"status": "ok", "providers": {name: {"key_present": bool}}}``; with ``?live=1``,
        each provider's live check too, and 503 with ``"degraded"`` when one failed.
        """
        from aiohttp import web

        live = request.query.get("live", "").lower() in _LIVE_VALUES
        if live:
            report = await self._live_report()
        else:
            report = await health_check(self.settings, live=False)
        providers = {name: _health_document(health, live=live) for name, health in report.items()}
        failed = any(health.live is False for health in report.values())
        document = {"status": "degraded" if failed else "ok", "providers": providers}
        return web.json_response(document, status=503 if failed else 200)

    async def metrics(self, _request: web.Request) -> web.Response:
        """The monitor in the Prometheus text format; 501 without prometheus_client."""
        from aiohttp import web

        try:
            body = render_metrics(self.monitor)
        except ConfigurationError as error:
            return web.json_response({"error": error.message}, status=501)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def usage(self, _request: web.Request) -> web.Response:
        """Spend and requests, in total and by model, for today and this month; 404 when no
        ledger is configured or its file does not exist.
        """
        from aiohttp import web

        try:
            path = existing_ledger(self.settings.ledger.path)
        except ConfigurationError as error:
            return web.json_response({"error": error.message}, status=404)
        try:
            async with self.ledger_lock:
                if self.ledger is None:
                    self.ledger = await asyncio.to_thread(UsageLedger, path)
            summary = await asyncio.to_thread(
                usage_summary, self.ledger, self.settings.budgets.timezone
            )
        except ConfigurationError as error:
            return web.json_response({"error": error.message}, status=500)
        except (sqlite3.Error, TimeoutError) as error:
            return web.json_response(
                {"error": f"cannot read the usage ledger: {error}"}, status=503
            )
        return web.json_response(summary)

    async def close(self, _app: web.Application) -> None:
        """Close the ledger, if one was opened (aiohttp's ``on_cleanup``)."""
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.close)
            self.ledger = None

    async def _live_report(self) -> dict[str, ProviderHealth]:
        # Concurrent probes wait for the one check in flight instead of sending their own.
        async with self.live_lock:
            now = time.monotonic()
            if self.live_report is None or now - self.live_report[0] > LIVE_CHECK_TTL:
                report = await health_check(self.settings, live=True)
                self.live_report = (time.monotonic(), report)
            return self.live_report[1]


def usage_summary(
    ledger: UsageLedger, timezone: str, now: datetime | None = None
) -> dict[str, Any]:
    """``{"timezone", "today": {...}, "month": {...}}``, each period with ``since``,
    ``total_cost`` (USD), ``requests`` and ``by_model`` (``{model: {"cost", "requests"}}``).

    Raises:
        ConfigurationError: ``timezone`` is unknown.

    """
    from aiecs_llm.accounting.reports import CostReport

    zone = report_zone(timezone)
    local_now = (now or datetime.now(zone)).astimezone(zone)
    today = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    periods = {"today": today, "month": today.replace(day=1)}
    summary: dict[str, Any] = {"timezone": timezone}
    for name, since in periods.items():
        report = CostReport.from_ledger(ledger, since=since, group_by=("model",), timezone=timezone)
        summary[name] = {
            "since": since.isoformat(),
            "total_cost": report.total_cost,
            "requests": report.total_requests,
            "by_model": {
                row.model or "unknown": {"cost": row.cost, "requests": row.requests}
                for row in report.rows
            },
        }
    return summary


def _health_document(health: ProviderHealth, *, live: bool) -> dict[str, Any]:
    document: dict[str, Any] = {"key_present": health.key_present}
    if live:
        document.update(
            live=health.live, latency_ms=health.latency_ms, model=health.model, error=health.error
        )
    return document


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
