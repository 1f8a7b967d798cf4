"""The pytest plugin as a service's test suite meets it: replay, misses, recording, scrubbing.

Each scenario is a small service suite run by pytester in a subprocess, with the plugin loaded
through its installed ``pytest11`` entry point exactly as in a service's CI.
"""

import asyncio
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import CASSETTES, ROOT
from tests.fake_provider import FakeProviderServer, Reply
from tests.servers import base_url
from tests.test_docs import blocks_of

pytest_plugins = ["pytester"]

DOCS = ROOT / "docs"

# Not shaped like real keys: scanners stay quiet, and scrubbing is proven to work by header and
# query name, not by recognising a key's pattern.
SECRETS = {
    "openai": "canary-openai-0123456789abcdefghij",
    "anthropic": "canary-anthropic-0123456789abcdefg",
    "google": "canary-google-0123456789abcdefghijklm",
}

# The service under test: what an AIECS service would have in its own package.
SERVICE = """
from aiecs_llm import LLMMessage, OpenAIClient
async def greet(prompt: str = "Say hello in five words.") -> str:
    async with OpenAIClient(max_retries=0) as client:
        response = await client.generate_text(
            [
                LLMMessage("system", "You are a concise assistant."),
                LLMMessage("user", prompt),
            ],
            model="gpt-4o-mini",
            temperature=0,
            max_tokens=50,
        )
    return response.content
"""

REPLAY_SUITE = """
import pytest
from service import greet


@pytest.mark.llm_cassette
async def test_greeting(llm_cassette):
    assert await greet() == "Hello there, how are you?"
    assert llm_cassette.play_count == 1


@pytest.mark.llm_cassette("recordings/test_service/test_greeting.yaml")
async def test_other_prompt():
    await greet("Say goodbye in five words.")


@pytest.mark.llm_cassette
async def test_never_recorded():
    await greet()
"""


def run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "--allow-hosts=127.0.0.1",
        *args,
    )


def test_loading_the_plugin_imports_neither_litellm_nor_vcrpy():
    probe = (
        "import sys, aiecs_llm.testing.pytest_plugin; "
        "loaded = {'litellm', 'vcr'} & set(sys.modules); "
        "sys.exit(sorted(loaded) or 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_service_suite_replays_and_names_what_is_missing(pytester, monkeypatch):
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_AI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)  # replay needs no key
    pytester.makepyfile(service=SERVICE, test_service=REPLAY_SUITE)
    pytester.makeini("[pytest]\nllm_cassette_dir = recordings\n")
    recorded = pytester.path / "recordings" / "test_service" / "test_greeting.yaml"
    recorded.parent.mkdir(parents=True)
    shutil.copy(CASSETTES / "openai" / "success.yaml", recorded)

    result = run_suite(pytester)

    result.assert_outcomes(passed=1, failed=1, errors=1)
    output = result.stdout.str()
    # The unrecorded prompt: a ConfigurationError naming the request, the field and the file.
    result.stdout.fnmatch_lines(
        [
            "*ConfigurationError: Can't play back this request*",
            "*POST https://api.openai.com/v1/chat/completions*",
            "*Cassette: *test_greeting.yaml*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*body_fields differs: messages: requested *Say goodbye*, recorded *Say hello*"]
    )
    assert "pytest --llm-record=new test_service.py::test_other_prompt" in output
    # The test without a recording fails at setup, naming the file it looked for.
    result.stdout.fnmatch_lines(
        ["*ConfigurationError: no cassette at *recordings/test_service/test_never_recorded.yaml*"]
    )


RECORD_SUITE = """
import os

import pytest
from aiecs_llm import AnthropicClient, GoogleAIClient, LLMMessage, OpenAIClient
HELLO = [LLMMessage("user", "Say hello in five words.")]
CLIENTS = {"openai": OpenAIClient, "anthropic": AnthropicClient, "google": GoogleAIClient}


@pytest.mark.llm_cassette
@pytest.mark.parametrize("provider", sorted(CLIENTS))
async def test_answer(provider):
    client = CLIENTS[provider](
        os.environ[f"SECRET_{provider}"], os.environ[f"BASE_{provider}"], max_retries=0
    )
    async with client:
        response = await client.generate_text(HELLO, temperature=0, max_tokens=20)
    assert response.content == "recorded answer"
"""


async def test_recording_scrubs_every_key_and_the_replay_needs_no_server(pytester, monkeypatch):
    pytester.makepyfile(test_recorded=RECORD_SUITE)
    async with FakeProviderServer(default=Reply.ok("recorded answer")) as server:
        for provider, secret in SECRETS.items():
            monkeypatch.setenv(f"SECRET_{provider}", secret)
            monkeypatch.setenv(f"BASE_{provider}", base_url(server, provider))
        # The suite runs in another process while this loop keeps the server answering.
        recording = await asyncio.to_thread(run_suite, pytester, "--llm-record=new")
        recording.assert_outcomes(passed=3)
        assert len(server.requests) == 3

    cassettes = sorted((pytester.path / "cassettes" / "test_recorded").glob("*.yaml"))
    assert [path.name for path in cassettes] == [
        "test_answer[anthropic].yaml",
        "test_answer[google].yaml",
        "test_answer[openai].yaml",
    ]
    for path in cassettes:
        text = path.read_text()
        assert "FILTERED" in text
        for secret in SECRETS.values():
            assert secret not in text
            assert secret[8:20] not in text

    # The server is gone and the keys are wrong now: the cassettes alone answer.
    for provider in SECRETS:
        monkeypatch.setenv(f"SECRET_{provider}", "not-the-recorded-key")
    replay = await asyncio.to_thread(run_suite, pytester)
    replay.assert_outcomes(passed=3)


def test_the_marker_is_declared_for_strict_suites(pytester):
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.llm_cassette
        def test_nothing():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--strict-markers", "--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*@pytest.mark.llm_cassette(path=None)*"])
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"  # inherited by every subprocess


def quickstart_block(defining: str) -> str:
    (code,) = [b.code for b in blocks_of(DOCS / "quickstart.md") if defining in b.code]
    return code


async def test_the_quickstart_service_test_records_then_replays(pytester, monkeypatch):
    pytester.makepyfile(service=quickstart_block("async def summarize"))
    (pytester.path / "tests").mkdir()
    test_file = pytester.path / "tests" / "test_service.py"
    test_file.write_text(quickstart_block("def test_summary_is_one_short_sentence"))
    secret = SECRETS["openai"]
    summary = "Asyncio lets one thread run many tasks that are waiting."
    args = (
        *("-p", "no:cacheprovider", "-o", "pythonpath=.", "--allow-hosts=127.0.0.1"),
        *("-o", "asyncio_default_fixture_loop_scope=function"),
    )

    async with FakeProviderServer(default=Reply.ok(summary)) as server:
        # The real API in the quickstart; the local server here. The URL stays for the replay,
        # since it is part of what a recording matches.
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base)
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        recording = await asyncio.to_thread(
            pytester.runpytest_subprocess, *args, "--llm-record=new", "tests/test_service.py"
        )
        recording.assert_outcomes(passed=1)

    cassette = pytester.path / (
        "tests/cassettes/test_service/test_summary_is_one_short_sentence.yaml"
    )  # the path the quickstart tells the reader to commit
    recorded = yaml.safe_load(cassette.read_text())["interactions"]
    assert summary in recorded[0]["response"]["body"]["string"]
    assert secret not in cassette.read_text()
    monkeypatch.delenv("OPENAI_API_KEY")
    replay = pytester.runpytest_subprocess(*args)
    replay.assert_outcomes(passed=1)
