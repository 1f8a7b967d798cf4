"""Good citizenship inside a service: quiet, lazy, and no leaked connections or global changes."""

import asyncio
import os
import subprocess
import sys

import pytest

import aiecs_llm
from aiecs_llm import LLMMessage, OpenAIClient
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.testing import use_cassette
from tests.conftest import CASSETTES
from tests.fake_provider import FakeProviderServer, Reply
from tests.servers import client_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]


def run_python(code, env_overrides):
    env = {k: v for k, v in os.environ.items() if k != _litellm.COST_MAP_ENV}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    ).stdout.strip()


def test_library_uses_the_bundled_cost_map_unless_told_otherwise():
    code = (
        "import os; from aiecs_llm.providers import engine; engine.litellm(); "
        "print(os.environ['%s'])"
    )
    assert run_python(code % _litellm.COST_MAP_ENV, {}) == "True"


def test_litellm_is_imported_once_when_many_threads_ask_at_once():
    # A client's background import and a caller's first call race for the module; one of them
    # imports it, and the collect-and-freeze that follows runs once, not per caller.
    code = (
        "import gc, threading\n"
        "from aiecs_llm.providers import engine\n"
        "freezes = []\n"
        "real_freeze = gc.freeze\n"
        "gc.freeze = lambda: (freezes.append(1), real_freeze())[1]\n"
        "engine.load_in_background()\n"
        "found = []\n"
        "threads = [threading.Thread(target=lambda: found.append(engine.litellm()))"
        " for _ in range(8)]\n"
        "[thread.start() for thread in threads]\n"
        "[thread.join() for thread in threads]\n"
        "print(len(freezes), len({id(module) for module in found}), engine.loaded())\n"
    )
    assert run_python(code, {}) == "1 1 True"


def test_the_users_choice_of_cost_map_is_kept():
    code = "import os; from aiecs_llm.providers import engine; print(os.environ['%s'])"
    assert run_python(code % _litellm.COST_MAP_ENV, {_litellm.COST_MAP_ENV: "False"}) == "False"


async def test_litellm_prints_nothing_on_errors(capsys):
    async with aiecs_llm.OpenAIClient(max_retries=0) as client:
        with (
            use_cassette(CASSETTES / "openai" / "error_401.yaml"),
            pytest.raises(aiecs_llm.AuthenticationError),
        ):
            await client.generate_text(MESSAGES, model="gpt-4o-mini")
    captured = capsys.readouterr()
    assert "Give Feedback" not in captured.out + captured.err
    assert "LiteLLM.Info" not in captured.out + captured.err


GLOBALS = (
    "num_retries",
    "drop_params",
    "suppress_debug_info",
    "request_timeout",
    "set_verbose",
    "api_key",
    "api_base",
    "callbacks",
    "success_callback",
    "failure_callback",
)


async def test_calls_change_no_litellm_globals(provider):
    litellm = _litellm.litellm()
    async with (
        FakeProviderServer() as server,
        client_for(server, provider, max_retries=0) as client,
    ):
        # LiteLLM initialises some of its own globals lazily on a provider's first call (the
        # Gemini path registers a "cache" success callback); the contract is that our calls
        # change nothing after that.
        await client.generate_text(MESSAGES)
        before = {name: repr(getattr(litellm, name, None)) for name in GLOBALS}
        server.enqueue(Reply.ok(), Reply.ok(), Reply.server_error())
        await client.generate_text(MESSAGES, temperature=0.1, max_tokens=20, timeout=5)
        async for _ in client.stream_text(MESSAGES):
            pass
        with pytest.raises(aiecs_llm.ProviderNotAvailableError):
            await client.generate_text(MESSAGES)
        after = {name: repr(getattr(litellm, name, None)) for name in GLOBALS}
    assert after == before
    assert litellm.suppress_debug_info is True


async def test_close_releases_the_clients_http_connections(provider):
    async with FakeProviderServer() as server:
        client = client_for(server, provider, max_retries=0)
        await client.generate_text(MESSAGES)
        (http_client,) = client._targets.open_http_clients()
        await client.close()
        await client.close()  # idempotent
    if provider == "openai":
        assert http_client.is_closed()
    else:
        assert http_client._client.is_closed
    assert client._targets.open_http_clients() == []


async def test_litellms_own_retries_are_off(provider):
    # One provider failure is one request: neither LiteLLM nor the OpenAI SDK retries on its own.
    async with FakeProviderServer() as server:
        server.enqueue(Reply.server_error(), Reply.server_error(), Reply.server_error())
        async with client_for(server, provider, max_retries=0) as client:
            with pytest.raises(aiecs_llm.ProviderNotAvailableError):
                await client.generate_text(MESSAGES)
        assert len(server.requests) == 1


_FIRST_CALL = """
import asyncio, sys, threading

class WhoImports:
    # Notes the thread that imports litellm; finds nothing itself.
    thread = None
    def find_spec(self, name, path=None, target=None):
        if name == "litellm" and WhoImports.thread is None:
            WhoImports.thread = threading.current_thread().name
        return None

sys.meta_path.insert(0, WhoImports())
from aiecs_llm import LLMMessage, OpenAIClient

async def main():
    async with OpenAIClient(api_key="test-key-warm-0000000000", base_url=sys.argv[1]) as client:
        await client.generate_text([LLMMessage("user", "hi")])
    print("litellm imported by:", WhoImports.thread, "loop thread:", threading.main_thread().name)

asyncio.run(main())
"""


async def test_the_first_call_imports_litellm_off_the_event_loop(server):
    # Issue 15: the first call imported LiteLLM (seconds) on the event loop, blocking every
    # other task of the service meanwhile.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _FIRST_CALL, server.openai_base],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "litellm imported by: " in done.stdout, done.stdout
    assert "litellm imported by: MainThread" not in done.stdout, done.stdout


async def test_warm_up_loads_what_the_first_call_needs(server):
    from aiecs_llm.providers import engine

    async with OpenAIClient(api_key="test-key-warm-0000000000", base_url=server.openai_base) as c:
        await c.warm_up()
        assert engine.loaded()
