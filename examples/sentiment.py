"""Sentiment analysis returning JSON: the answer is parsed and validated with pydantic.

    python examples/sentiment.py

The model is asked for JSON mode (``response_format``), and the result is still validated:
a reply that is not JSON, or not the promised shape, is reported instead of trusted.
"""

import asyncio
from typing import Literal

from _common import accounting, example_client
from pydantic import BaseModel, Field, ValidationError

from aiecs_llm import LLMMessage, OpenAIClient


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str = Field(min_length=1)


INSTRUCTIONS = (
    "You are a sentiment analysis expert capable of accurately analyzing text sentiment. "
    'Reply with JSON only: {"sentiment": "positive" | "negative" | "neutral", '
    '"confidence": a number from 0.0 to 1.0, "reason": "a short analysis reason"}'
)
TEXTS = [
    "This product is really great, I'm very satisfied!",
    "The delivery was two weeks late and nobody answered my emails.",
    "The package arrived on Tuesday.",
]


async def analyze_sentiment(client: OpenAIClient, text: str) -> Sentiment | None:
    messages = [
        LLMMessage("system", INSTRUCTIONS),
        LLMMessage("user", f"Please analyze the sentiment of the following text: {text}"),
    ]
    response = await client.generate_text(
        messages, temperature=0.1, max_tokens=200, response_format={"type": "json_object"}
    )
    print(accounting(response))
    try:
        return Sentiment.model_validate_json(response.content)
    except ValidationError as error:
        print(f"  rejected: {error.error_count()} problem(s) in {response.content!r}")
        return None


async def main() -> None:
    async with example_client("sentiment") as client:
        for text in TEXTS:
            result = await analyze_sentiment(client, text)
            if result is not None:
                print(f"  {text}\n  -> {result.model_dump_json()}\n")


if __name__ == "__main__":
    asyncio.run(main())
