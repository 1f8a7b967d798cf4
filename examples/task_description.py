"""Task description generation: turn a user's request into a structured task for a service.

python examples/task_description.py
"""

import asyncio

from _common import accounting, example_client

from aiecs_llm import LLMMessage, OpenAIClient


async def generate_task_description(client: OpenAIClient, user_input: str) -> str:
    messages = [
        LLMMessage(
            "system",
            "You are a task analysis expert capable of converting user natural language "
            "descriptions into structured task descriptions.",
        ),
        LLMMessage(
            "user",
            "Please analyze the following user requirement and generate a detailed task "
            f"description: {user_input}",
        ),
    ]
    # A low temperature keeps the structure consistent from one request to the next.
    response = await client.generate_text(messages, temperature=0.3, max_tokens=300)
    print(accounting(response))
    return response.content


async def main() -> None:
    user_request = "I want to analyze sales data and generate a report"
    async with example_client("task_description") as client:
        description = await generate_task_description(client, user_request)
    print(f"\nUser request: {user_request}\n\nGenerated task description:\n{description}")


if __name__ == "__main__":
    asyncio.run(main())
