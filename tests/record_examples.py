"""Record examples/cassettes/<example>.yaml against the local wire-format server.

    python -m tests.record_examples                 # every example
    python -m tests.record_examples sentiment chat  # some

Each example script runs unchanged, in its live mode (``OPENAI_API_KEY`` set), with
``OPENAI_BASE_URL`` pointing at tests/fake_provider on 127.0.0.1. The server answers each prompt
with the text written below in ANSWERS; token counts are those of gpt-4o-mini's tokenizer for the
real request and answer. The URI is rewritten to api.openai.com and credentials are filtered, so
the example replays with no key, and each cassette says in its first lines that it was
synthesized here. With a real key the examples call OpenAI instead and print real answers.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import runpy
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from aiohttp import web

from aiecs_llm.testing import LLM_MATCH_ON, body_fields

from .fake_provider import FakeProviderServer, Reply
from .fake_provider.record import scrub_request, scrub_response

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RECORDINGS = EXAMPLES / "cassettes"
TOKENIZER_MODEL = "gpt-4o-mini"
CHAT_INPUT = "What is a Python decorator?\nShow me a one-line example.\nquit\n"
"""What the recording (and the test) pipes into examples/chat.py."""

HEADER = """\
# SYNTHESIZED LOCALLY, not real model output: LiteLLM's real requests, answered by the local
# wire-format server tests/fake_provider with the texts in tests/record_examples.py (token
# counts from gpt-4o-mini's tokenizer). The URI was rewritten to the real endpoint and
# credentials were filtered. Re-record: python -m tests.record_examples {name}
"""

# Keyed by the last user message of each request.
ANSWERS: dict[str, dict[str, str]] = {
    "single_generation": {
        "Please explain what asynchronous programming is?": (
            "Asynchronous programming is a way of writing programs so that a task can start a "
            "slow operation, such as a network request, a database query or reading a file, "
            "and then let other work run while it waits for the result, instead of blocking.\n\n"
            "Key ideas:\n"
            "1. **Non-blocking I/O**: the program hands the waiting to the operating system and "
            "is notified when data is ready.\n"
            "2. **An event loop** keeps track of everything that is waiting and resumes each "
            "task when its result arrives.\n"
            "3. **Coroutines** (`async def` in Python) are functions that can pause at `await` "
            "and resume later without holding up the rest of the program.\n\n"
            "It shines when a program spends most of its time waiting, for example a web server "
            "handling thousands of connections or a client calling several APIs at once. It "
            "does not make CPU-heavy work faster; for that, use threads or processes."
        )
    },
    "conversation": {
        "Hello, I want to learn Python programming.": (
            "Hello! That's a great choice: Python is readable, versatile and a good first "
            "language. A good path is to start with the basics (variables, data types, "
            "conditions and loops), then functions and modules, then lists and dictionaries, "
            "and then small projects such as a to-do list or a number-guessing game. Do you "
            "have any programming experience, and is there something you'd like to build?"
        ),
        "Please recommend some learning resources.": (
            "Here are some well-regarded resources:\n\n"
            "1. **The official Python Tutorial** (docs.python.org/3/tutorial): free and "
            "thorough.\n"
            '2. **"Automate the Boring Stuff with Python"** by Al Sweigart: practical '
            "projects, free to read online.\n"
            '3. **"Python Crash Course"** by Eric Matthes: a book that ends with three '
            "projects.\n"
            "4. **Exercism and Codewars**: small exercises with feedback.\n"
            "5. **Real Python**: tutorials on specific topics once you know the basics.\n\n"
            "Pick one main resource, write code every day, and build something small as soon "
            "as you can. Happy coding!"
        ),
    },
    "streaming": {
        "Please write a short story about artificial intelligence, under 150 words.": (
            "The lighthouse AI had kept ships off the rocks for forty years when the last "
            "keeper retired. Nobody told it to stop, so it didn't.\n\n"
            "Each night it swept the beam across the water and listened to the radio chatter "
            "of fishing boats. It learned their names, their captains' jokes, the way Maria on "
            "the Estrella hummed when the nets were full.\n\n"
            "One winter, a storm knocked out the harbor's power. The boats were still out. The "
            "AI rerouted its backup batteries, dimmed its own circuits to a whisper, and kept "
            "the light burning until dawn.\n\n"
            "When the boats came home, Maria climbed the hill and knocked on the lighthouse "
            "door, though she knew no one would answer.\n\n"
            '"Thank you," she said anyway.\n\n'
            "The beam flickered once, gently, like a nod."
        )
    },
    "chat": {
        "What is a Python decorator?": (
            "A decorator is a function that takes another function and returns a new function "
            "that adds behaviour around it, without changing the original's code. You apply "
            "it with the `@` syntax above a definition: `@my_decorator` on `def f` means "
            "`f = my_decorator(f)`. Common uses are logging, timing, caching "
            "(`functools.lru_cache`) and access checks."
        ),
        "Show me a one-line example.": (
            "```python\n"
            "from functools import lru_cache\n\n"
            "@lru_cache\n"
            "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
            "```\n"
            "`@lru_cache` wraps `fib` so each result is computed once, which turns the "
            "exponential recursion into a linear one."
        ),
    },
    "task_description": {
        "Please analyze the following user requirement and generate a detailed task "
        "description: I want to analyze sales data and generate a report": (
            "**Task:** Sales data analysis and report\n\n"
            "**Objective:** Analyze the sales data to identify trends and key metrics, and "
            "produce a report for stakeholders.\n\n"
            "**Inputs:** Sales records (date, product, region, quantity, unit price, customer "
            "segment) for the period to analyze, as CSV or database tables.\n\n"
            "**Steps:**\n"
            "1. Collect and validate the data: remove duplicates, handle missing values, check "
            "date ranges.\n"
            "2. Compute key metrics: total revenue, units sold, average order value, growth "
            "versus the previous period.\n"
            "3. Break the results down by product, region and month; identify top and bottom "
            "performers.\n"
            "4. Visualize trends with line and bar charts.\n"
            "5. Write the report: summary, findings, charts and recommendations.\n\n"
            "**Deliverable:** A PDF or slide report with an executive summary.\n\n"
            "**Open questions:** reporting period, audience, and preferred format."
        )
    },
    "code_generation": {
        "Please generate python code based on the following requirements:\n"
        "Implement a quicksort algorithm with detailed comments": (
            "Here is a quicksort implementation with detailed comments:\n\n"
            "```python\n"
            "def quicksort(items):\n"
            '    """Return a new list with the elements of items in ascending order."""\n'
            "    # Base case: a list of zero or one element is already sorted.\n"
            "    if len(items) <= 1:\n"
            "        return items\n\n"
            "    # Choose the middle element as the pivot; this avoids the worst case\n"
            "    # on lists that are already sorted.\n"
            "    pivot = items[len(items) // 2]\n\n"
            "    # Partition the list into three parts relative to the pivot.\n"
            "    smaller = [x for x in items if x < pivot]\n"
            "    equal = [x for x in items if x == pivot]\n"
            "    larger = [x for x in items if x > pivot]\n\n"
            "    # Sort the partitions recursively and join them.\n"
            "    return quicksort(smaller) + equal + quicksort(larger)\n\n\n"
            'if __name__ == "__main__":\n'
            "    data = [33, 10, 55, 71, 29, 3, 18, 42]\n"
            '    print("Original:", data)\n'
            '    print("Sorted:  ", quicksort(data))\n'
            "```\n\n"
            "**How it works:** the list is split around a pivot into smaller, equal and larger "
            "elements, and the smaller and larger parts are sorted the same way. The average "
            "time is O(n log n) and the worst case O(n^2). This version returns a new list; an "
            "in-place version using index partitioning saves memory on large inputs."
        )
    },
    "summarization": {
        "Please generate a summary for the following text:\n\n": (
            "AI is a field of computer science building machines that act intelligently, from "
            "robotics to language; data-driven learning made it far more capable and raised "
            "questions of bias and work."
        )
    },
    "sentiment": {
        "Please analyze the sentiment of the following text: This product is really great, "
        "I'm very satisfied!": (
            '{"sentiment": "positive", "confidence": 0.97, "reason": "The text praises the '
            'product (\\"really great\\") and states clear satisfaction."}'
        ),
        "Please analyze the sentiment of the following text: The delivery was two weeks late "
        "and nobody answered my emails.": (
            '{"sentiment": "negative", "confidence": 0.93, "reason": "The customer reports a '
            'long delay and unanswered emails, both clear complaints."}'
        ),
        "Please analyze the sentiment of the following text: The package arrived on Tuesday.": (
            '{"sentiment": "neutral", "confidence": 0.88, "reason": "A factual statement about '
            'delivery with no positive or negative wording."}'
        ),
    },
    "batch": {
        "hey, can u send me the sales report by tmrw?": (
            "Could you please send me the sales report by tomorrow?"
        ),
        "the meeting got moved to friday, no idea why": (
            "Please note that the meeting has been rescheduled to Friday; the reason for the "
            "change has not been communicated."
        ),
        "thx for the help yesterday, ur the best": (
            "Thank you very much for your assistance yesterday; it was greatly appreciated."
        ),
    },
}

_REQUEST: ContextVar[Any] = ContextVar("request")


class ScriptedServer(FakeProviderServer):
    """The fake provider, answering each prompt with its own text whatever the arrival order
    (the batch example sends three at once)."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers = answers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _REQUEST.set(json.loads(await request.read()))  # aiohttp caches the body for the base
        return await super()._handle(request)

    def _next_reply(self) -> Reply:
        import litellm

        payload = _REQUEST.get()
        asked = payload["messages"][-1]["content"]
        # The summary prompt embeds the article; it is keyed by its fixed beginning.
        text = next(answer for prompt, answer in self.answers.items() if asked.startswith(prompt))
        completion = litellm.token_counter(model=TOKENIZER_MODEL, text=text)
        return Reply.ok(
            text,
            prompt_tokens=litellm.token_counter(
                model=TOKENIZER_MODEL, messages=payload["messages"]
            ),
            completion_tokens=completion,
            model="gpt-4o-mini-2024-07-18",
            chunks=max(1, completion // 4),
        )


@contextmanager
def running(server: FakeProviderServer) -> Iterator[None]:
    """Serve from a thread of its own: the example runs its own event loop here."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result()
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def record(name: str) -> None:
    import vcr

    path = RECORDINGS / f"{name}.yaml"
    path.unlink(missing_ok=True)
    server = ScriptedServer(ANSWERS[name])
    recorder = vcr.VCR(
        record_mode="all",
        match_on=list(LLM_MATCH_ON),
        before_record_request=scrub_request,
        before_record_response=scrub_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("body_fields", body_fields)
    stdin = sys.stdin
    with running(server):
        os.environ["OPENAI_API_KEY"] = "test-key"
        os.environ["OPENAI_BASE_URL"] = server.openai_base
        sys.stdin = io.StringIO(CHAT_INPUT)
        try:
            with recorder.use_cassette(str(path)):
                runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
        finally:
            sys.stdin = stdin
            del os.environ["OPENAI_API_KEY"], os.environ["OPENAI_BASE_URL"]
    path.write_text(HEADER.format(name=name) + path.read_text())
    print(f"wrote {path.relative_to(EXAMPLES.parent)}: {len(server.requests)} request(s)")


def main(argv: list[str]) -> int:
    # LiteLLM reads this at import; without it the import would fetch the price map.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    sys.path.insert(0, str(EXAMPLES))
    for name in argv or sorted(ANSWERS):
        record(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
