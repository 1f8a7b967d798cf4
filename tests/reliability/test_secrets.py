"""A canary API key pushed through every path; no 8-character slice of it may come out.

The canary is random base62, not key-shaped, so the pattern-based scrubbing of
``aiecs_llm.config.secrets`` cannot catch it by luck: only handling the key as a secret keeps it in.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import structlog
from structlog.testing import capture_logs

import aiecs_llm
from aiecs_llm import LiteLLMClient, LLMMessage, LLMSettings, health_check
from aiecs_llm.accounting.budget import Budget, BudgetController
from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.monitor import LLMMonitor
from aiecs_llm.accounting.prometheus import render_metrics
from aiecs_llm.config.secrets import fingerprint
from aiecs_llm.resilience import retry, state
from aiecs_llm.testing import use_cassette
from tests.fake_provider import Reply
from tests.reliability.chaos_server import ChaosServer
from tests.reliability.figures import ROOT, Figures, assert_no_canary
from tests.servers import MODELS, base_url, settings_for

CANARY = "Qx7Kc2Lm9Vb4Nw6Tp1Rs5Zd8Hj3Fy0"
CANARY_2 = "Wp4Ty8Gh2Jk6Lz0Xc3Vb7Nm1Qa5Sd9"
MESSAGES = [LLMMessage("user", "Say hello in five words.")]
PROVIDERS = ("openai", "anthropic", "google")
# Every way a provider or the network can fail, plus success.
REPLIES = {
    "ok": Reply.ok(),
    "invalid_api_key": Reply.invalid_api_key(),
    "permission_denied": Reply.permission_denied(),
    "model_not_found": Reply.model_not_found(),
    "rate_limited": Reply.rate_limited(retry_after_ms=10),
    "quota_exceeded": Reply.quota_exceeded(),
    "context_length_exceeded": Reply.context_length_exceeded(),
    "server_error": Reply.server_error(),
    "unavailable": Reply.unavailable(),
    "overloaded": Reply.overloaded(),
    "reset_connection": Reply.reset_connection(),
    "malformed_json": Reply.malformed_json(),
    "cut_before_text": Reply.cut_stream(after_chunks=0),
    "cut_mid_stream": Reply.cut_stream(after_chunks=3),
    "hang": Reply.hang(),
}
NOISY_LOGGERS = (
    "",
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "httpx",
    "httpcore",
    "httpx2",
    "httpcore2",
    "openai",
    "aiohttp",
)


class Leaks:
    """Collects everything a scenario printed, logged, raised or returned, and scans it."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures
        self.texts: list[tuple[str, str | bytes]] = []

    def add(self, where: str, data: str | bytes) -> None:
        self.texts.append((where, data))

    def outcome(self, where: str, result: object) -> None:
        """A response or an error: repr, str, and for errors the whole cause chain."""
        self.add(f"{where} repr", repr(result))
        self.add(f"{where} str", str(result))
        if isinstance(result, BaseException):
            self.add(f"{where} traceback", "".join(traceback.format_exception(result)))
            seen: list[BaseException] = []
            current: BaseException | None = result
            # The chain as Python shows it: __cause__, else an unsuppressed __context__.
            while current is not None and current not in seen:  # chains may loop
                seen.append(current)
                self.add(f"{where} cause {type(current).__name__}", repr(current))
                self.add(f"{where} attributes", repr(vars(current)))
                suppressed = current.__suppress_context__
                current = current.__cause__ or (None if suppressed else current.__context__)

    def check(self, canary: str = CANARY) -> None:
        for where, data in self.texts:
            assert_no_canary(data, canary, where)
            self.figures.leak_checks += 1


@contextmanager
def debug_logging(mode: str) -> Iterator[tuple[list[dict[str, object]], io.StringIO]]:
    """structlog at DEBUG (captured, or through real renderers into a buffer) and stdlib
    logging at DEBUG for the library's dependencies, into a buffer.
    """
    stdlib = io.StringIO()
    handler = logging.StreamHandler(stdlib)
    handler.setLevel(logging.DEBUG)
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    logging.getLogger().addHandler(handler)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    previous = structlog.get_config()
    rendered = io.StringIO()
    try:
        if mode == "capture_logs":
            with capture_logs() as events:
                yield events, stdlib
        else:
            # What an application would configure: console lines and JSON lines, at DEBUG.
            console = structlog.dev.ConsoleRenderer(colors=False)
            as_json = structlog.processors.JSONRenderer(default=repr)

            def both(logger: object, name: str, event: dict[str, object]) -> str:
                return console(logger, name, dict(event)) + "\n" + as_json(logger, name, event)

            structlog.configure(
                processors=[
                    structlog.contextvars.merge_contextvars,
                    structlog.processors.add_log_level,
                    structlog.processors.StackInfoRenderer(),
                    structlog.processors.TimeStamper(fmt="iso"),
                    both,
                ],
                wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
                logger_factory=structlog.PrintLoggerFactory(file=rendered),
                cache_logger_on_first_use=False,
            )
            yield [{"rendered": rendered}], stdlib
    finally:
        structlog.configure(**previous)
        logging.getLogger().removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def keyed_client(server: ChaosServer, provider: str, **options: object) -> LiteLLMClient:
    """A named client with the key given (``api_key=``) pointed at the local server."""
    options.setdefault("model", MODELS[provider])
    return aiecs_llm.PROVIDERS[provider](base_url=base_url(server, provider), **options)


def _texts_of(events: list[dict[str, object]]) -> str:
    parts = []
    for event in events:
        rendered = event.get("rendered")
        parts.append(rendered.getvalue() if isinstance(rendered, io.StringIO) else repr(event))
    return "\n".join(parts)


async def _call(client: LiteLLMClient, *, stream: bool, leaks: Leaks, where: str) -> object:
    try:
        if stream:
            text_stream = client.stream_text(MESSAGES, max_tokens=20)
            async for _ in text_stream:
                pass
            result: object = text_stream.response
        else:
            result = await client.generate_text(MESSAGES, max_tokens=20)
    except aiecs_llm.LLMClientError as error:
        result = error
    leaks.outcome(where, result)
    return result


@pytest.mark.parametrize("mode", ["capture_logs", "renderer"])
async def test_every_outcome_keeps_the_canary_out(chaos, figures, mode, tmp_path, capfd):
    leaks = Leaks(figures)
    ledger = UsageLedger(tmp_path / "usage.db")
    monitor = LLMMonitor()
    monitor.attach_state(state.DEFAULT_STATE.snapshot)
    calls = 0
    with debug_logging(mode) as (events, stdlib):
        for provider in PROVIDERS:
            for name, reply in REPLIES.items():
                for stream in (False, True):
                    chaos.enqueue(reply)
                    async with keyed_client(
                        chaos,
                        provider,
                        api_key=CANARY,
                        max_retries=0,
                        timeout=0.5 if name == "hang" else 10,
                        ledger=ledger,
                        monitor=monitor,
                        state=state.InProcessState(),
                    ) as client:
                        leaks.add("client repr", repr(client))
                        leaks.add("client str", str(client))
                        leaks.add("client settings", repr(client.settings))
                        await _call(client, stream=stream, leaks=leaks, where=f"{provider} {name}")
                    calls += 1
            # Retries: a rate limit waited out, then one that is not.
            chaos.enqueue(Reply.rate_limited(retry_after_ms=10), Reply.ok())
            chaos.enqueue(Reply.server_error(), Reply.server_error())
            async with keyed_client(
                chaos, provider, api_key=CANARY, max_retries=1, ledger=ledger, monitor=monitor
            ) as client:
                for stream in (False, True):
                    await _call(client, stream=stream, leaks=leaks, where=f"{provider} retried")
                    calls += 1
    leaks.add("structlog", _texts_of(events))
    leaks.add("stdlib logging at DEBUG", stdlib.getvalue())
    captured = capfd.readouterr()
    leaks.add("stdout", captured.out)
    leaks.add("stderr", captured.err)
    leaks.add("prometheus export", render_metrics(monitor))
    leaks.add("metrics", json.dumps(monitor.get_metrics(), default=repr))
    leaks.add("state snapshot", repr(state.DEFAULT_STATE.snapshot()))
    leaks.add("ledger rows", repr(ledger.rows()))
    ledger.close()
    for path in tmp_path.glob("usage.db*"):
        leaks.add(f"ledger file {path.name}", path.read_bytes())
    leaks.check()
    assert ledger.path.exists()
    assert len(chaos.requests) >= calls  # the calls really reached the server, with the key
    assert all(request.api_key == CANARY for request in chaos.requests)
    figures.requests += calls


async def test_fallbacks_rotation_and_refusals_keep_both_canaries_out(
    chaos, figures, capfd, monkeypatch
):
    monkeypatch.setattr(retry, "INITIAL_RETRY_DELAY", 0.01)
    leaks = Leaks(figures)
    keys = {name: [CANARY] for name in PROVIDERS} | {"openai": [CANARY, CANARY_2]}
    settings = settings_for(
        chaos,
        keys=keys,
        fallbacks={
            "openai/gpt-4o-mini": ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]
        },
        breaker_failures=2,
    )
    monitor = LLMMonitor()
    monitor.attach_state(state.DEFAULT_STATE.snapshot)
    with debug_logging("capture_logs") as (events, stdlib):
        async with LiteLLMClient(
            "openai/gpt-4o-mini", settings=settings, max_retries=1, monitor=monitor
        ) as client:
            # Rotation: a 429 rests the first key, a 401 retires the second.
            chaos.enqueue(Reply.rate_limited(retry_after_ms=50), Reply.ok())
            await _call(client, stream=False, leaks=leaks, where="rotation 429")
            chaos.enqueue(Reply.invalid_api_key(), Reply.ok())
            await _call(client, stream=True, leaks=leaks, where="rotation 401")
            # Fallbacks across all three providers, plain and streamed.
            for stream in (False, True):
                chaos.enqueue(
                    Reply.unavailable(), Reply.unavailable(), Reply.model_not_found(), Reply.ok()
                )
                await asyncio.sleep(0.06)  # the first key's 50 ms cool-down is over
                await _call(client, stream=stream, leaks=leaks, where="fallback")
            # An open circuit, then a budget refusal.
            chaos.enqueue(*[Reply.server_error()] * 12)
            for _ in range(3):
                await _call(client, stream=False, leaks=leaks, where="circuit")
        budget = BudgetController([Budget("daily", 1e-9)])
        async with LiteLLMClient(
            "openai/gpt-4o-mini", settings=settings, budget=budget, monitor=monitor
        ) as client:
            refused = await _call(client, stream=False, leaks=leaks, where="budget")
        assert isinstance(refused, aiecs_llm.BudgetExceededError)
    rendered = _texts_of(events)
    assert "llm.key.rejected" in rendered
    assert "llm.key.cooling" in rendered
    assert "llm.request.fallback" in rendered
    assert fingerprint(CANARY_2) in rendered  # keys are named by fingerprint only
    leaks.add("structlog", rendered)
    leaks.add("stdlib logging at DEBUG", stdlib.getvalue())
    leaks.add("prometheus export", render_metrics(monitor))
    leaks.add("state snapshot", repr(state.DEFAULT_STATE.snapshot()))
    captured = capfd.readouterr()
    leaks.add("stdout", captured.out)
    leaks.add("stderr", captured.err)
    leaks.check(CANARY)
    leaks.check(CANARY_2)
    assert {request.api_key for request in chaos.requests} >= {CANARY, CANARY_2}
    figures.requests += 8


async def test_settings_errors_and_health_checks_keep_the_canary_out(
    chaos, figures, monkeypatch, tmp_path, capfd
):
    leaks = Leaks(figures)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    monkeypatch.setenv("GOOGLE_AI_API_KEY", CANARY)
    monkeypatch.setenv("OPENAI_API_KEY_1", CANARY_2)
    monkeypatch.setenv("OPENAI_BASE_URL", chaos.openai_base)
    config = tmp_path / "llm.toml"
    config.write_text(
        f'[providers.anthropic]\napi_keys = ["{CANARY}", "{CANARY_2}"]\n'
        f'base_url = "{chaos.anthropic_base}"\n'
        f'[providers.google]\napi_key = "{CANARY}"\nbase_url = "{chaos.gemini_base}"\n'
    )
    settings = LLMSettings.load(config)
    for text in (repr(settings), str(settings), repr(settings.model_dump())):
        leaks.add("settings", text)
    leaks.add("settings json", settings.model_dump_json())
    # A key-like value where a number belongs, in the environment and in the file: the
    # error names the setting, never the value.
    for variable in ("LLM_TIMEOUT", "LLM_MAX_RETRIES", "LLM_DEFAULT_TEMPERATURE"):
        monkeypatch.setenv(variable, CANARY)
        with pytest.raises(aiecs_llm.ConfigurationError) as caught:
            LLMSettings.load()
        leaks.outcome(variable, caught.value)
        monkeypatch.delenv(variable)
    for bad in (
        f'[defaults]\ntimeout = "{CANARY}"\n',
        f'[providers.openai]\napi_keys = "{CANARY}"\n',
        f'[providers.openai]\napi_key = ["{CANARY}"]\n',
        f"[providers.openai]\napi_key = {CANARY}\n",  # not even TOML
        f'[providers.openai]\napi_key = "{CANARY}\n',  # an unterminated string
    ):
        broken = tmp_path / "broken.toml"
        broken.write_text(bad)
        with pytest.raises(aiecs_llm.ConfigurationError) as caught:
            LLMSettings.load(broken)
        leaks.outcome("config file error", caught.value)
    with debug_logging("capture_logs") as (events, stdlib):
        async with aiecs_llm.OpenAIClient(max_retries=0) as client:  # key from the environment
            leaks.add("client", repr(client))
            await _call(client, stream=False, leaks=leaks, where="environment key")
        # Key checks before the health check: its ping would be answered from the response
        # cache afterwards (see test_validate_api_key_checks_the_key_it_is_given).
        chaos.enqueue(Reply.invalid_api_key(), Reply.server_error())
        rejected = await aiecs_llm.validate_api_key(
            "openai", CANARY, base_url=chaos.openai_base, timeout=5
        )
        unverified = await aiecs_llm.validate_api_key(
            "openai", CANARY, base_url=chaos.openai_base, timeout=5
        )
        report = await health_check(settings, timeout=5)
        leaks.add("health", repr(report))
    assert (rejected, unverified) == (False, False)
    assert all(health.live for health in report.values())
    assert report["google"].key_fingerprint == fingerprint(CANARY)
    leaks.add("structlog", _texts_of(events))
    leaks.add("stdlib logging at DEBUG", stdlib.getvalue())
    captured = capfd.readouterr()
    leaks.add("stdout", captured.out)
    leaks.add("stderr", captured.err)
    leaks.check(CANARY)
    leaks.check(CANARY_2)
    figures.requests += 6


async def test_a_recorded_cassette_holds_no_key(chaos, figures, tmp_path):
    leaks = Leaks(figures)
    for provider in PROVIDERS:
        cassette = tmp_path / f"{provider}.yaml"
        chaos.enqueue(Reply.ok(), Reply.ok(), Reply.invalid_api_key(), Reply.rate_limited())
        async with keyed_client(chaos, provider, api_key=CANARY, max_retries=0) as client:
            with use_cassette(cassette, record_mode="once"):
                for stream in (False, True, False, False):
                    await _call(client, stream=stream, leaks=leaks, where=f"{provider} recorded")
        recorded = cassette.read_bytes()
        assert recorded.count(b"- request:") == 4
        leaks.add(f"cassette {cassette.name}", recorded)
        # Replaying it needs no key at all.
        async with keyed_client(chaos, provider, api_key="replay", max_retries=0) as client:
            with use_cassette(cassette):
                response = await client.generate_text(MESSAGES, max_tokens=20)
        assert response.content
    leaks.check()
    figures.requests += 15


def _cli(
    server: ChaosServer, *arguments: str, base_url: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("_API_KEY") and not name.startswith(("LLM_", "OPENAI_"))
    }
    env |= {
        "OPENAI_API_KEY": CANARY,
        "ANTHROPIC_API_KEY": CANARY,
        "GOOGLE_AI_API_KEY": CANARY,
        "LITELLM_LOG": "DEBUG",
    }
    if base_url:
        env["OPENAI_BASE_URL"] = server.openai_base
    return subprocess.run(
        [sys.executable, "-m", "aiecs_llm", "--debug", *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
        check=False,
    )


async def test_cli_debug_output_holds_no_key(chaos, figures):
    # The offline tour: the keys in the environment must not show up in what --debug prints.
    finished = await asyncio.to_thread(_cli, chaos, "demo", base_url=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "[REPLAY]" in finished.stdout
    assert_no_canary(finished.stdout, CANARY, "CLI stdout")
    assert_no_canary(finished.stderr, CANARY, "CLI stderr")
    figures.leak_checks += 2


async def test_cli_demo_ignores_the_machines_base_url(chaos, figures):
    finished = await asyncio.to_thread(_cli, chaos, "demo")
    assert_no_canary(finished.stdout + finished.stderr, CANARY, "CLI output")
    figures.leak_checks += 1
    assert chaos.requests == []
    assert finished.returncode == 0, finished.stderr[-2000:]


@pytest.mark.parametrize(
    ("reply", "stream", "exit_code"),
    [
        ("ok", False, 0),
        ("ok", True, 0),
        ("invalid_api_key", False, 1),
        ("server_error", True, 1),
    ],
)
async def test_cli_debug_chat_holds_no_key(chaos, figures, reply, stream, exit_code):
    chaos.enqueue(REPLIES[reply], REPLIES[reply], REPLIES[reply])
    arguments = ["chat", "-m", "openai/gpt-4o-mini", "Say hello in five words."]
    finished = await asyncio.to_thread(_cli, chaos, *arguments, *(["--stream"] if stream else []))
    assert_no_canary(finished.stdout, CANARY, "CLI stdout")
    assert_no_canary(finished.stderr, CANARY, "CLI stderr")
    figures.leak_checks += 2
    figures.requests += 1
    assert chaos.requests, "the CLI never reached the server"
    assert {request.api_key for request in chaos.requests} == {CANARY}
    assert finished.returncode == exit_code, finished.stderr[-2000:]
    assert "llm.request." in finished.stderr  # --debug shows the library's log events
    if reply == "invalid_api_key":
        # The fake OpenAI echoes the rejected key masked, as the real API does (3 + 4 chars).
        assert f"{CANARY[:3]}*****{CANARY[-4:]}" in finished.stderr
        assert "Traceback" in finished.stderr


async def test_validate_api_key_checks_the_key_it_is_given(chaos, figures):
    assert await aiecs_llm.validate_api_key("openai", CANARY, base_url=chaos.openai_base)
    chaos.enqueue(Reply.invalid_api_key())
    revoked = await aiecs_llm.validate_api_key("openai", CANARY_2, base_url=chaos.openai_base)
    figures.requests += 2
    assert [request.api_key for request in chaos.requests] == [CANARY, CANARY_2]
    assert revoked is False


@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_BASE_URL"), ("anthropic", "ANTHROPIC_BASE_URL")]
)
async def test_validate_api_key_ignores_the_machines_base_url(
    chaos, figures, monkeypatch, provider, variable
):
    # The key must go to the provider's own endpoint (refused here: sockets beyond 127.0.0.1
    # are blocked), never to wherever the machine's environment points.
    monkeypatch.setenv(variable, base_url(chaos, provider))
    assert not await aiecs_llm.validate_api_key(provider, CANARY, timeout=2)
    figures.requests += 1
    assert chaos.requests == []


# Long keys too: renderers show a long string by a slice of it (80 characters).
LOGGED_KEYS = {"short": CANARY, "long": CANARY * 5}


def _log_the_failure(renderer: str) -> io.StringIO:
    """What an application does with a failed call: log it, with its traceback."""
    out = io.StringIO()
    if renderer == "console":  # structlog's default renderer: rich tracebacks with locals
        processors = [
            structlog.processors.add_log_level,
            structlog.dev.set_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    else:  # JSON logs with structured tracebacks (structlog's production recipe)
        processors = [
            structlog.processors.add_log_level,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(file=out),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    return out


@pytest.mark.parametrize("renderer", ["console", "json"])
async def test_an_application_logging_the_error_with_its_traceback_leaks_no_key(
    chaos, figures, renderer
):
    previous = structlog.get_config()
    replies = ("server_error", "cut_mid_stream")
    logged = 0
    try:
        out = _log_the_failure(renderer)
        # The key is never a local of this frame: the logged traceback shows this frame too.
        for provider, length, stream, reply in itertools.product(
            PROVIDERS, LOGGED_KEYS, (False, True), replies
        ):
            chaos.enqueue(REPLIES[reply])
            async with keyed_client(
                chaos, provider, api_key=LOGGED_KEYS[length], max_retries=0
            ) as client:
                try:
                    if stream:
                        async for _ in client.stream_text(MESSAGES):
                            pass
                    else:
                        await client.generate_text(MESSAGES)
                except aiecs_llm.LLMClientError:
                    structlog.get_logger("app").exception("llm call failed", provider=provider)
                    logged += 1
    finally:
        structlog.configure(**previous)
    figures.requests += len(PROVIDERS) * len(LOGGED_KEYS) * 2 * len(replies)
    assert out.getvalue().count("llm call failed") == logged == len(PROVIDERS) * 2 * 2 * 2
    # The locals were rendered (so the check below is not vacuous), the key's only as ***.
    assert "'***'" in out.getvalue()
    figures.leak_checks += 1
    assert_no_canary(out.getvalue(), CANARY, f"{renderer} exception log")


def test_the_canary_check_itself_catches_a_partial_echo():
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_canary(f"key ...{CANARY[5:13]}...", CANARY)
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_canary(f"x{CANARY}x".encode(), CANARY)
    assert_no_canary(f"{CANARY[:3]}*****{CANARY[-4:]}", CANARY)  # masked the way OpenAI does
