"""Multi-turn conversation: each answer goes back into the history for the next question.

python examples/conversation.py
"""

import asyncio

from _common import accounting, example_client

from aiecs_llm import LLMMessage

QUESTIONS = [
    "Hello, I want to learn Python programming.",
    "Please recommend some learning resources.",
]


async def main() -> None:
    conversation = [LLMMessage("system", "You are a friendly AI assistant.")]
    async with example_client("conversation") as client:
        for question in QUESTIONS:
            conversation.append(LLMMessage("user", question))
            response = await client.generate_text(conversation, temperature=0.8, max_tokens=300)
            conversation.append(LLMMessage("assistant", response.content))
            print(f"User: {question}\nAI: {response.content}\n{accounting(response)}\n")
    print(f"The conversation has {len(conversation)} messages.")


if __name__ == "__main__":
    asyncio.run(main())
