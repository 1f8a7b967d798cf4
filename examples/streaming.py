"""Streaming output: print the answer as it is generated; usage and cost arrive at the end.

python examples/streaming.py
"""

import asyncio

from _common import accounting, example_client

from aiecs_llm import LLMMessage

MESSAGES = [
    LLMMessage("system", "You are a creative writing assistant."),
    LLMMessage(
        "user", "Please write a short story about artificial intelligence, under 150 words."
    ),
]


async def main() -> None:
    async with example_client("streaming") as client:
        print("Starting story generation...\n")
        stream = client.stream_text(MESSAGES, temperature=0.9, max_tokens=300)
        async for chunk in stream:
            print(chunk, end="", flush=True)
    print("\n\nStory generation completed!")
    print(accounting(stream.response))
    if stream.response.time_to_first_chunk is not None:
        print(f"First words after {stream.response.time_to_first_chunk * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
