"""What every example shares: a client that calls OpenAI when ``OPENAI_API_KEY`` is set and
replays a recording when it is not, and one line of accounting per answer."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog

from aiecs_llm import LLMResponse, LLMSettings, OpenAIClient
from aiecs_llm.testing import LLM_MATCH_ON, use_cassette

# The library never configures logging; an application does. These scripts show only
# warnings, so that a retry or a failed call is still visible.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

MODEL = "gpt-4o-mini"
RECORDINGS = Path(__file__).resolve().parent / "cassettes"
# A replayed request carries no key; the client only insists that one is configured.
REPLAY_KEY = "replay-without-a-key"


@asynccontextmanager
async def example_client(example: str) -> AsyncIterator[OpenAIClient]:
    """An ``OpenAIClient`` for ``MODEL``: live with a key, else replaying
    ``cassettes/<example>.yaml``. Either way the whole client stack runs; only the HTTP
    answers differ.
    """
    if os.environ.get("OPENAI_API_KEY"):
        print(f"[LIVE] {MODEL} with OPENAI_API_KEY: real calls, billed to your account\n")
        async with OpenAIClient(model=MODEL) as client:
            yield client
        return
    recording = RECORDINGS / f"{example}.yaml"
    print(
        f"[REPLAY] no OPENAI_API_KEY: answers replayed from examples/cassettes/{recording.name}\n"
        "         (synthesized locally, not real model output; set OPENAI_API_KEY to call OpenAI)\n"
    )
    # The machine's own configuration is ignored so that the replayed requests stay identical.
    with use_cassette(recording, match_on=LLM_MATCH_ON):
        async with OpenAIClient(REPLAY_KEY, model=MODEL, settings=LLMSettings()) as client:
            yield client


def accounting(response: LLMResponse) -> str:
    """One line: the model that answered, tokens, cost and latency."""
    cost = "unknown" if response.cost_estimate is None else f"${response.cost_estimate:.6f}"
    return (
        f"[{response.model}: {response.prompt_tokens} tokens in, "
        f"{response.completion_tokens} out, cost {cost}, {response.response_time:.2f} s]"
    )
