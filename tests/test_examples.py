"""Every script in examples/ runs as a user runs it, offline, and says what it should.

Without a key each example replays examples/cassettes/<name>.yaml (recorded with
``python -m tests.record_examples``); with one it calls the provider, checked here against the
local fake server.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_provider import FakeProviderServer, Reply
from tests.record_examples import ANSWERS, CHAT_INPUT

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(path.stem for path in EXAMPLES.glob("[!_]*.py"))

# What each replay must print besides its recorded answers.
EXPECTED = {
    "batch": ["3/3 done", "text-3: thx for the help yesterday"],
    "chat": ["User: Show me a one-line example.", "Bye."],
    "code_generation": ["Syntax check: 23 lines of Python that parse"],
    "conversation": ["The conversation has 5 messages."],
    "sentiment": ['"sentiment":"positive","confidence":0.97', '"sentiment":"neutral"'],
    "single_generation": ["Model used: gpt-4o-mini-2024-07-18", "Tokens used: 213"],
    "streaming": ["Story generation completed!", "First words after"],
    "summarization": ["within the 200-character limit"],
    "task_description": ["Generated task description:"],
}


def run_example(name: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        input=stdin or (CHAT_INPUT if name == "chat" else ""),
        env=environment | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_use_case_has_an_example_and_a_recording():
    assert SCRIPTS == sorted(ANSWERS) == sorted(EXPECTED)
    for name in SCRIPTS:
        recording = (EXAMPLES / "cassettes" / f"{name}.yaml").read_text()
        assert recording.startswith("# SYNTHESIZED LOCALLY, not real model output")
        assert "FILTERED" in recording
        assert "test-key" not in recording


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_replays_offline(name):
    result = run_example(name)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == (
        f"[REPLAY] no OPENAI_API_KEY: answers replayed from examples/cassettes/{name}.yaml"
    )
    for answer in ANSWERS[name].values():
        shown = answer
        if name == "sentiment":  # printed as validated, compact JSON
            shown = json.dumps(json.loads(answer), separators=(",", ":"))
        assert shown.strip() in out  # every recorded answer reaches the user, whole
    for line in EXPECTED[name]:
        assert line in out
    if name != "single_generation":  # which prints the spec's own fields instead
        assert "[gpt-4o-mini-2024-07-18: " in out
        assert " out, cost $0.0" in out
    assert "Traceback" not in result.stderr


def test_piped_chat_survives_a_question_the_replay_does_not_know():
    result = run_example("chat", stdin="What is a closure?\nWhat is a Python decorator?\n")
    assert result.returncode == 0, result.stderr
    assert "(not in the recording; a replay knows only RECORDED_QUESTIONS" in result.stdout
    assert ANSWERS["chat"]["What is a Python decorator?"] in result.stdout
    assert result.stdout.rstrip().endswith("Bye.")  # end of input ends the chat


async def test_with_a_key_the_example_calls_the_provider():
    async with FakeProviderServer(default=Reply.ok("A live answer.")) as server:
        proc = await _run_async(
            "single_generation",
            OPENAI_API_KEY="sk-test-live-mode-000",
            OPENAI_BASE_URL=server.openai_base,
        )
        assert len(server.requests) == 1
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[LIVE] gpt-4o-mini with OPENAI_API_KEY")
    assert "Generated content: A live answer." in proc.stdout
    assert "sk-test-live-mode-000" not in proc.stdout + proc.stderr


async def _run_async(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The server answers on this loop while the example runs in its own process.
    return await asyncio.to_thread(run_example, name, **env)
