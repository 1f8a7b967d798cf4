"""Single text generation: one question, one answer, with its tokens and cost.

python examples/single_generation.py          # replay; with OPENAI_API_KEY: live
"""

import asyncio

from _common import example_client

from aiecs_llm import LLMMessage

MESSAGES = [
    LLMMessage(
        "system", "You are a professional AI assistant specializing in technical questions."
    ),
    LLMMessage("user", "Please explain what asynchronous programming is?"),
]


async def main() -> None:
    async with example_client("single_generation") as client:
        response = await client.generate_text(MESSAGES, temperature=0.7, max_tokens=500)
    print(f"Generated content: {response.content}\n")
    print(f"Model used: {response.model}")
    print(f"Tokens used: {response.tokens_used}")
    if response.cost_estimate is not None:
        print(f"Cost estimate: ${response.cost_estimate:.6f}")


if __name__ == "__main__":
    asyncio.run(main())
