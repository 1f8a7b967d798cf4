"""Batch processing: many prompts, a few at a time, results in input order; a failed item does
not stop the others.

    python examples/batch.py

For thousands of prompts from a file, resumable after a crash, see ``aiecs-llm batch``.
"""

import asyncio

from _common import accounting, example_client

from aiecs_llm import LLMMessage
from aiecs_llm.client.batch import BatchProgress, BatchRequest, batch_generate

OPERATION = "Convert text to formal business language"
TEXTS = [
    "hey, can u send me the sales report by tmrw?",
    "the meeting got moved to friday, no idea why",
    "thx for the help yesterday, ur the best",
]


def show_progress(progress: BatchProgress) -> None:
    print(f"  {progress.done}/{progress.total} done, ${progress.cost:.6f} so far")


async def main() -> None:
    system = LLMMessage(
        "system",
        f"You are a text processing expert, please perform the following operation: {OPERATION}",
    )
    requests = [
        BatchRequest(
            id=f"text-{number}",
            messages=[system, LLMMessage("user", text)],
            temperature=0.3,
            max_tokens=100,
        )
        for number, text in enumerate(TEXTS, start=1)
    ]
    async with example_client("batch") as client:
        # Three calls in flight at most; the client's own rate limits and retries still apply.
        results = await batch_generate(client, requests, concurrency=3, progress=show_progress)
    for text, result in zip(TEXTS, results, strict=True):
        print(f"\n{result.id}: {text}")
        if result.response is not None:
            print(f"  -> {result.response.content}\n  {accounting(result.response)}")
        else:
            print(f"  -> {result.status}: {result.error}")


if __name__ == "__main__":
    asyncio.run(main())
