"""The operations server: its endpoints through aiohttp's test server, a real bind on
127.0.0.1:0, and `aiecs-llm serve` as a process stopped by SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.accounting.prometheus import CONTENT_TYPE
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.cli.ops_server import create_app, serve, usage_summary
from aiecs_llm.config.settings import Ledger, LLMSettings, ProviderSettings
from aiecs_llm.errors import ConfigurationError
from tests.conftest import FAKE_KEYS
from tests.fake_provider import Reply
from tests.servers import settings_for


async def client_for(settings: LLMSettings, monitor: LLMMonitor | None = None) -> TestClient:
    client = TestClient(TestServer(create_app(settings, monitor=monitor)))
    await client.start_server()
    return client


def record(at: datetime, model: str, cost: float) -> RequestRecord:
    return RequestRecord(
        started_at=at, provider="openai", model=model, prompt_tokens=10, completion_tokens=2,
        cost=cost,
    )  # fmt: skip


# -- /healthz --------------------------------------------------------------------------------


async def test_healthz_reports_key_presence_without_calling_anyone(server):
    settings = LLMSettings(providers={"openai": ProviderSettings(api_key="sk-only-openai-123")})
    client = await client_for(settings)
    try:
        answer = await client.get("/healthz")
        assert answer.status == 200
        assert await answer.json() == {
            "status": "ok",
            "providers": {
                "openai": {"key_present": True},
                "anthropic": {"key_present": False},
                "google": {"key_present": False},
            },
        }
    finally:
        await client.close()
    assert server.requests == []


async def test_healthz_live_checks_each_provider_once_per_ttl(server):
    client = await client_for(settings_for(server))
    try:
        first = await (await client.get("/healthz?live=1")).json()
        again = await client.get("/healthz", params={"live": "true"})
        assert again.status == 200
        assert await again.json() == first
    finally:
        await client.close()
    assert first["status"] == "ok"
    for health in first["providers"].values():
        assert health["key_present"] is True
        assert health["live"] is True
        assert health["latency_ms"] > 0
        assert health["error"] is None
    assert len(server.requests) == 3  # the second probe was answered from the cached check
    assert "test-key" not in json.dumps(first)


async def test_healthz_live_failure_is_503_degraded(server):
    server.enqueue(Reply.invalid_api_key())
    client = await client_for(
        LLMSettings(
            providers={
                "openai": ProviderSettings(api_key="sk-rejected-1234", base_url=server.openai_base)
            }
        )
    )
    try:
        answer = await client.get("/healthz?live=1")
        document = await answer.json()
    finally:
        await client.close()
    assert answer.status == 503
    assert document["status"] == "degraded"
    assert document["providers"]["openai"]["live"] is False
    assert document["providers"]["openai"]["error"].startswith("AuthenticationError")
    assert document["providers"]["anthropic"] == {
        "key_present": False, "live": None, "latency_ms": None, "model": None, "error": None,
    }  # fmt: skip
    assert "sk-rejected-1234" not in json.dumps(document)


# -- /metrics --------------------------------------------------------------------------------


async def test_metrics_are_prometheus_text():
    monitor = LLMMonitor()
    monitor.record(record(datetime.now(UTC), "gpt-4o-mini", 0.25))
    client = await client_for(LLMSettings(), monitor)
    try:
        answer = await client.get("/metrics")
        body = await answer.text()
    finally:
        await client.close()
    assert answer.status == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE
    assert 'aiecs_llm_requests_total{outcome="success"} 1.0' in body
    assert 'aiecs_llm_cost_usd_total{model="gpt-4o-mini",provider="openai"} 0.25' in body


async def test_metrics_without_prometheus_client_is_501(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import now fails
    client = await client_for(LLMSettings())
    try:
        answer = await client.get("/metrics")
        document = await answer.json()
    finally:
        await client.close()
    assert answer.status == 501
    assert "pip install 'aiecs-llm[prometheus]'" in document["error"]


# -- /usage ----------------------------------------------------------------------------------


def test_usage_summary_for_today_and_this_month(tmp_path):
    now = datetime(2025, 6, 15, 9, 30, tzinfo=UTC)
    with UsageLedger(tmp_path / "usage.db") as ledger:
        ledger.record(record(now - timedelta(hours=1), "gpt-4o-mini", 0.01))
        ledger.record(record(now - timedelta(hours=2), "gpt-4o", 0.10))
        ledger.record(record(now - timedelta(days=3), "gpt-4o-mini", 0.02))
        ledger.record(record(now - timedelta(days=20), "gpt-4o-mini", 5.00))  # May
        summary = usage_summary(ledger, "UTC", now=now)
    assert summary["today"] == {
        "since": "2025-06-15T00:00:00+00:00",
        "total_cost": pytest.approx(0.11),
        "requests": 2,
        "by_model": {
            "gpt-4o": {"cost": 0.10, "requests": 1},
            "gpt-4o-mini": {"cost": 0.01, "requests": 1},
        },
    }
    assert summary["month"]["since"] == "2025-06-01T00:00:00+00:00"
    assert summary["month"]["requests"] == 3
    assert summary["month"]["by_model"]["gpt-4o-mini"] == {"cost": 0.03, "requests": 2}


def test_usage_summary_days_follow_the_timezone(tmp_path):
    now = datetime(2025, 6, 15, 2, 0, tzinfo=UTC)  # still 14 June in New York
    with UsageLedger(tmp_path / "usage.db") as ledger:
        ledger.record(record(now - timedelta(hours=3), "gpt-4o-mini", 0.01))
        summary = usage_summary(ledger, "America/New_York", now=now)
    assert summary["today"]["since"] == "2025-06-14T00:00:00-04:00"
    assert summary["today"]["requests"] == 1


async def test_usage_endpoint_reads_the_configured_ledger(tmp_path):
    path = tmp_path / "usage.db"
    with UsageLedger(path) as ledger:
        ledger.record(record(datetime.now(UTC), "gpt-4o-mini", 0.5))
        ledger.record(record(datetime.now(UTC) - timedelta(days=400), "gpt-4o-mini", 9.0))
    client = await client_for(LLMSettings(ledger=Ledger(path=str(path))))
    try:
        answer = await client.get("/usage")
        document = await answer.json()
    finally:
        await client.close()
    assert answer.status == 200
    for period in ("today", "month"):
        assert document[period]["total_cost"] == 0.5
        assert document[period]["by_model"] == {"gpt-4o-mini": {"cost": 0.5, "requests": 1}}


@pytest.mark.parametrize(
    ("ledger_path", "message"),
    [
        (None, "no usage ledger configured: set LLM_USAGE_DB or [ledger] path in the config file"),
        ("/nonexistent/usage.db", "no usage ledger at /nonexistent/usage.db"),
    ],
)
async def test_usage_without_a_ledger_is_404(ledger_path, message):
    client = await client_for(LLMSettings(ledger=Ledger(path=ledger_path)))
    try:
        answer = await client.get("/usage")
        document = await answer.json()
    finally:
        await client.close()
    assert answer.status == 404
    assert document["error"].startswith(message)


# -- serving ---------------------------------------------------------------------------------


async def test_serve_binds_loopback_and_stops_when_told():
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    app = create_app(LLMSettings())
    task = asyncio.create_task(serve(app, port=0, stop=stop, on_ready=ready.set_result))
    url = await asyncio.wait_for(ready, 10)
    assert url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as answer:
        assert answer.status == 200
        assert (await answer.json())["status"] == "ok"
    stop.set()
    await asyncio.wait_for(task, 10)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"{url}/healthz")


async def test_serve_reports_a_port_in_use():
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    first = asyncio.create_task(
        serve(create_app(LLMSettings()), port=0, stop=stop, on_ready=ready.set_result)
    )
    port = int((await asyncio.wait_for(ready, 10)).rsplit(":", 1)[1])
    try:
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve(create_app(LLMSettings()), port=port, stop=asyncio.Event())
    finally:
        stop.set()
        await first


def test_serve_command_runs_until_sigterm(tmp_path):
    ledger = tmp_path / "usage.db"
    with UsageLedger(ledger) as opened:
        opened.record(record(datetime.now(UTC), "gpt-4o-mini", 0.25))
    env = {**os.environ, "LLM_USAGE_DB": str(ledger)}
    process = subprocess.Popen(
        [sys.executable, "-m", "aiecs_llm", "serve", "--port", "0"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        announced = process.stderr.readline()
        url = announced.split()[2].removesuffix("/healthz,")
        assert url.startswith("http://127.0.0.1:"), announced
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as answer:
            health = json.load(answer)
        with urllib.request.urlopen(f"{url}/usage", timeout=10) as answer:
            usage = json.load(answer)
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
            assert answer.headers["Content-Type"] == CONTENT_TYPE
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        process.kill()
        process.wait()
    assert health == {
        "status": "ok",
        "providers": {name: {"key_present": True} for name in ("openai", "anthropic", "google")},
    }
    assert usage["today"]["total_cost"] == 0.25
    assert process.returncode == 0
    assert (out, err) == ("", "aiecs-llm: stopped\n")
    assert all(key not in announced + err for key in FAKE_KEYS.values())


def test_serve_help_names_the_loopback_default(capsys):
    from aiecs_llm.cli.main import main

    assert main(["serve", "--help"]) == 0
    assert "default: 127.0.0.1" in capsys.readouterr().out


def test_serve_warns_when_not_on_loopback(monkeypatch, capsys):
    from aiecs_llm.cli import serve as serve_command
    from aiecs_llm.cli.main import main

    async def pretend(**_options: object) -> None:
        return None

    monkeypatch.setattr(serve_command, "_serve_until_signalled", pretend)
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert "have no authentication and 0.0.0.0 is not loopback" in err


def test_import_needs_no_aiohttp():
    script = "import sys, aiecs_llm.cli.ops_server; print('aiohttp' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.stdout.strip() == "False"
