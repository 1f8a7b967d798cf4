"""``aiecs-llm demo``: a tour of the library that needs no key and no network.

Every call goes through the real client stack (validation, LiteLLM, the HTTP client, error
translation, usage and cost), but the HTTP traffic is replayed from recordings shipped with the
package, and each step says so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TextIO

from aiecs_llm.client.litellm_client import LiteLLMClient
from aiecs_llm.client.named import PROVIDERS
from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.errors import LLMClientError
from aiecs_llm.testing import use_cassette
from aiecs_llm.types import LLMMessage, LLMResponse

# Replays carry no key; this placeholder only satisfies the client's "key present" check.
REPLAY_KEY = "replay-without-a-key"


@dataclass(frozen=True)
class Tour:
    """One provider's stop on the tour."""

    provider: str
    recordings: str
    model: str


TOURS = (
    Tour("openai", "openai", "gpt-4o-mini"),
    Tour("anthropic", "anthropic", "claude-sonnet-4-5"),
    Tour("google", "gemini", "gemini-2.5-flash"),
)

QUESTION = [
    LLMMessage("system", "You are a helpful assistant."),
    LLMMessage("user", "What is asynchronous programming, in one sentence?"),
]
GREETING = [
    LLMMessage("system", "You are a concise assistant."),
    LLMMessage("user", "Say hello in five words."),
]


def recordings_dir() -> Path:
    """Where the recordings are: inside an installed wheel, or the source checkout's cassettes/."""
    packaged = Path(str(files("aiecs_llm"))) / "_recordings"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "cassettes"


async def run(out: TextIO | None = None) -> int:
    """Play the tour on ``out`` (stdout); returns the number of steps that did not behave as
    recorded.
    """
    out = out or sys.stdout
    root = recordings_dir()
    if not root.is_dir():
        out.write(f"No recordings found at {root}; reinstall aiecs-llm.\n")
        return 1
    settings = LLMSettings()  # the tour ignores the machine's keys and config on purpose
    failures = 0
    out.write("aiecs-llm demo: REPLAYS of recorded provider conversations.\n")
    out.write("No network, no API key: HTTP answers come from recordings, all else is real.\n")
    for tour in TOURS:
        client = PROVIDERS[tour.provider](
            api_key=REPLAY_KEY, model=tour.model, max_retries=0, settings=settings
        )
        async with client:
            failures += await _tour(client, tour, root / tour.recordings, out)
    out.write("\nSwitching provider is a change of model string: ")
    out.write("create_client('anthropic/claude-sonnet-4-5').\n")
    if failures:
        out.write(f"{failures} step(s) did not behave as recorded.\n")
    return failures


async def _tour(client: LiteLLMClient, tour: Tour, folder: Path, out: TextIO) -> int:
    failures = 0
    out.write(f"\n=== {tour.provider} ({tour.model}) ===\n")
    _label(out, "generate_text", folder / "demo_conversation.yaml")
    with use_cassette(folder / "demo_conversation.yaml"):
        answer = await client.generate_text(QUESTION, max_tokens=100, temperature=0)
    out.write(f"  Q: {QUESTION[-1].content}\n  A: {answer.content}\n")
    _accounting(answer, out)

    _label(out, "stream_text", folder / "stream.yaml")
    out.write("  ")
    stream = client.stream_text(GREETING, max_tokens=50, temperature=0)
    with use_cassette(folder / "stream.yaml"):
        async for chunk in stream:
            out.write(chunk + "|")
            out.flush()
    out.write("   (| marks chunk boundaries)\n")
    _accounting(stream.response, out)

    for case in ("error_429", "error_401"):
        _label(out, "an error, classified", folder / f"{case}.yaml")
        try:
            with use_cassette(folder / f"{case}.yaml"):
                # Bypass the response cache: the stream above already answered this prompt.
                await client.generate_text(GREETING, max_tokens=50, temperature=0, cache="bypass")
        except LLMClientError as error:
            retry = f", retry_after={error.retry_after:g}s" if error.retry_after is not None else ""
            first_line = error.message.splitlines()[0][:90]
            out.write(f"  {type(error).__name__} (status {error.status_code}{retry})\n")
            out.write(f"  {first_line}\n")
        else:
            out.write("  unexpected: the recorded error did not raise\n")
            failures += 1
    return failures


def _label(out: TextIO, what: str, recording: Path) -> None:
    out.write(f"\n[REPLAY] {what} <- {recording.parent.name}/{recording.name}\n")


def _accounting(response: LLMResponse, out: TextIO) -> None:
    cost = "unknown" if response.cost_estimate is None else f"${response.cost_estimate:.6f}"
    first = (
        ""
        if response.time_to_first_chunk is None
        else f", first chunk after {response.time_to_first_chunk * 1000:.0f} ms"
    )
    out.write(
        f"  model={response.model} tokens={response.prompt_tokens}+{response.completion_tokens}"
        f" cost={cost} finish={response.finish_reason}{first}\n"
    )
