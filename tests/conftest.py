"""Test-wide rules: no network beyond loopback, no real keys, LiteLLM's bundled price map."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# LiteLLM reads this at import; without it the import would fetch the price map.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
CONFORMANCE = ROOT.parent / "shared" / "conformance"

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "GOOGLE_AI_API_KEY",
    "GEMINI_API_KEY",
    "LLM_DEFAULT_MODEL",
    "LLM_DEFAULT_TEMPERATURE",
    "LLM_MAX_TOKENS",
    "LLM_TIMEOUT",
    "LLM_MAX_RETRIES",
    "LLM_CONFIG_FILE",
    "LLM_MAX_CONCURRENCY",
    "LLM_STREAM_IDLE_TIMEOUT",
    "LLM_DAILY_BUDGET",
    "LLM_MONTHLY_BUDGET",
    "LLM_BUDGET_TIMEZONE",
    "LLM_USAGE_DB",
    "LLM_STATE_URL",
    "LLM_BUDGET_FAIL_OPEN",
)

FAKE_KEYS = {
    "OPENAI_API_KEY": "sk-test-openai-0000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-00000",  # fake; short enough to look fake too
    "GOOGLE_AI_API_KEY": "test-google-key-000000000000",
}


@pytest.fixture(autouse=True)
def _fresh_shared_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Breakers, key cool-downs, budgets and ledgers are process-wide; each test starts with
    none."""
    from aiecs_llm.client import shared as accounting
    from aiecs_llm.resilience import state

    monkeypatch.setattr(state, "DEFAULT_STATE", state.InProcessState())
    monkeypatch.setattr(accounting, "DEFAULTS", accounting._Defaults())


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with fake keys and no other LLM configuration from the machine."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if any(
            name.startswith(f"{key}_") and name[len(key) + 1 :].isdigit()
            for key in (*FAKE_KEYS, "GEMINI_API_KEY")
        ):
            monkeypatch.delenv(name)  # numbered keys for rotation: OPENAI_API_KEY_1, ...
    for name, value in FAKE_KEYS.items():
        monkeypatch.setenv(name, value)


# Spelled out so that collecting tests does not import the library; test_contract checks it
# against the registry.
PROVIDER_NAMES = ["anthropic", "google", "openai"]


@pytest.fixture(params=PROVIDER_NAMES, ids=str)
def provider(request: pytest.FixtureRequest) -> str:
    """Each registered provider in turn."""
    name: str = request.param
    return name


@pytest.fixture
async def server() -> AsyncIterator[object]:
    """A fault-injecting provider server on 127.0.0.1 for the test's duration."""
    from tests.fake_provider import FakeProviderServer

    async with FakeProviderServer() as running:
        yield running
