"""Summarization: a summary held to a length limit, checked after the call.

python examples/summarization.py
"""

import asyncio

from _common import accounting, example_client

from aiecs_llm import LLMMessage, OpenAIClient

ARTICLE = """\
Artificial Intelligence (AI) is a branch of computer science that attempts to understand the
essence of intelligence and produce a new type of intelligent machine that can react in ways
similar to human intelligence. Research in the field includes robotics, speech recognition,
image recognition, natural language processing and expert systems. Since the birth of the
discipline, its theories and techniques have matured steadily and its fields of application
have kept expanding. Modern systems learn from large amounts of data rather than following
hand-written rules, which has made them far more capable, and has also raised new questions
about reliability, bias, energy use and the future of work.
"""


async def summarize_text(client: OpenAIClient, text: str, max_length: int = 200) -> str:
    messages = [
        LLMMessage(
            "system",
            "You are a professional text summarization expert capable of generating concise "
            f"and accurate summaries, not exceeding {max_length} characters.",
        ),
        LLMMessage("user", f"Please generate a summary for the following text:\n\n{text}"),
    ]
    response = await client.generate_text(messages, temperature=0.3, max_tokens=max_length)
    print(accounting(response))
    return response.content


async def main() -> None:
    limit = 200
    async with example_client("summarization") as client:
        summary = await summarize_text(client, ARTICLE, limit)
    print(f"\nSummary: {summary}\n")
    verdict = "within" if len(summary) <= limit else "OVER"
    print(f"{len(summary)} characters from {len(ARTICLE)}: {verdict} the {limit}-character limit")


if __name__ == "__main__":
    asyncio.run(main())
