"""Streams against the local wire-format server: usage, timing, and breaks mid-way."""

import pytest

import aiecs_llm
from aiecs_llm import LLMMessage
from tests.fake_provider import Reply
from tests.servers import client_for

MESSAGES = [LLMMessage("user", "Say hello in five words.")]


async def test_stream_asks_for_usage_and_accounts_it(server, provider):
    server.enqueue(
        Reply.ok("one two three four five", prompt_tokens=31, completion_tokens=9, chunks=5)
    )
    async with client_for(server, provider, max_retries=0) as client:
        stream = client.stream_text(MESSAGES, max_tokens=20)
        chunks = [chunk async for chunk in stream]
    assert "".join(chunks) == "one two three four five"
    assert (stream.response.prompt_tokens, stream.response.completion_tokens) == (31, 9)
    assert stream.response.cost_estimate > 0
    (request,) = server.requests
    if provider == "openai":
        assert request.json["stream_options"] == {"include_usage": True}
    assert request.json.get("stream") is True or "streamGenerateContent" in request.path


async def test_time_to_first_chunk_and_total_time(server, provider):
    server.enqueue(Reply.ok("a b c d", chunks=4, delay=0.2, chunk_delay=0.1))
    async with client_for(server, provider, max_retries=0) as client:
        stream = client.stream_text(MESSAGES)
        async for _ in stream:
            pass
    response = stream.response
    assert 0.2 <= response.time_to_first_chunk < response.response_time
    assert response.response_time >= 0.2 + 0.25


async def test_a_stream_cut_mid_way_raises_with_the_partial_text(server, provider):
    server.enqueue(Reply.cut_stream(after_chunks=4, text="alpha beta gamma delta", chunks=4))
    received = []
    async with client_for(server, provider, max_retries=2) as client:
        stream = client.stream_text(MESSAGES)
        with pytest.raises(aiecs_llm.StreamInterruptedError) as caught:
            async for chunk in stream:
                received.append(chunk)
    assert received, "the cut should come after some text"
    assert caught.value.partial_text == "".join(received) == stream.text
    assert "alpha beta gamma delta".startswith(caught.value.partial_text)
    assert not stream.done
    # Never retried once text was yielded: exactly one request reached the server.
    assert len(server.requests) == 1


async def test_a_stream_cut_before_any_text_is_retried(server, provider):
    server.enqueue(Reply.cut_stream(after_chunks=0, text="never seen", chunks=4))
    async with client_for(server, provider, max_retries=1) as client:
        stream = client.stream_text(MESSAGES)
        text = "".join([chunk async for chunk in stream])
    assert text == "Hello there, how are you?"  # the server's default reply, on the retry
    assert len(server.requests) == 2


async def test_a_cut_stream_is_never_silent_without_retries(server, provider):
    server.enqueue(Reply.cut_stream(after_chunks=1, chunks=4))
    async with client_for(server, provider, max_retries=0) as client:
        with pytest.raises(aiecs_llm.ProviderNotAvailableError):
            async for _ in client.stream_text(MESSAGES):
                pass


async def test_malformed_stream_is_a_classified_error(server, provider):
    server.enqueue(Reply.malformed_json())
    async with client_for(server, provider, max_retries=0) as client:
        stream = client.stream_text(MESSAGES)
        with pytest.raises(aiecs_llm.LLMClientError):
            async for _ in stream:
                pass


async def test_stream_error_before_the_first_chunk_is_retried(server, provider):
    server.enqueue(Reply.rate_limited(retry_after_ms=50), Reply.ok("recovered", chunks=2))
    async with client_for(server, provider, max_retries=1) as client:
        stream = client.stream_text(MESSAGES)
        text = "".join([chunk async for chunk in stream])
    assert text == "recovered"
    assert len(server.requests) == 2


async def test_closing_a_stream_early_releases_it(server, provider):
    server.enqueue(Reply.ok("a b c d e f g h", chunks=8, chunk_delay=0.05))
    async with client_for(server, provider, max_retries=0) as client:
        async with client.stream_text(MESSAGES) as stream:
            first = await anext(stream)
        assert first
        assert not stream.done
        # The client still works after an abandoned stream.
        response = await client.generate_text(MESSAGES)
    assert response.content


async def test_invalid_arguments_fail_before_any_request(server, provider):
    async with client_for(server, provider) as client:
        with pytest.raises(aiecs_llm.InvalidRequestError):
            client.stream_text(MESSAGES, temperature=7)
        with pytest.raises(aiecs_llm.InvalidRequestError):
            client.stream_text([])
    assert server.requests == []
