"""aiecs_llm.testing: record once, replay offline, never store a key."""

import pytest

import aiecs_llm
from aiecs_llm import LLMMessage, OpenAIClient
from aiecs_llm.testing import use_cassette
from tests.conftest import CASSETTES
from tests.fake_provider import FakeProviderServer, Reply
from tests.servers import base_url

SECRET = "canary-testing-kit-0123456789abcdefghijklmn"
MESSAGES = [LLMMessage("user", "Say hello in five words.")]


def test_a_missing_cassette_is_named():
    missing = pytest.raises(aiecs_llm.ConfigurationError, match=r"no cassette at .*absent\.yaml")
    with missing, use_cassette(CASSETTES / "absent.yaml"):
        pass


async def test_an_unrecorded_request_is_a_configuration_error_not_an_outage():
    async with OpenAIClient(max_retries=3) as client:
        with (
            use_cassette(CASSETTES / "openai" / "success.yaml"),
            pytest.raises(aiecs_llm.ConfigurationError, match="Can't play back this request"),
        ):
            await client.generate_text(MESSAGES, model="gpt-4o")  # recorded as gpt-4o-mini...
            await client.generate_text(MESSAGES, model="gpt-4o-mini")  # ...so this one misses


async def test_unplayed_interactions_fail_when_asked():
    unplayed = pytest.raises(AssertionError, match="never played")
    with unplayed, use_cassette(CASSETTES / "openai" / "success.yaml", allow_unplayed=False):
        pass


async def test_recording_scrubs_keys_and_replay_needs_no_server(tmp_path):
    path = tmp_path / "recorded.yaml"
    async with FakeProviderServer() as server:
        url = base_url(server, "openai")
        server.enqueue(Reply.ok("recorded answer").with_headers(set_cookie="session=abc"))
        async with OpenAIClient(SECRET, url, max_retries=0) as client:
            with use_cassette(path, record_mode="once"):
                first = await client.generate_text(MESSAGES, model="gpt-4o-mini")
    text = path.read_text()
    assert SECRET not in text
    assert SECRET[8:20] not in text
    assert "FILTERED" in text
    assert "session=abc" not in text
    # The server is gone; the replay alone answers.
    async with OpenAIClient(SECRET, url, max_retries=0) as client:
        with use_cassette(path, allow_unplayed=False):
            again = await client.generate_text(MESSAGES, model="gpt-4o-mini")
    assert again.content == first.content == "recorded answer"
