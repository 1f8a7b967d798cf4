"""Interactive streaming chat: type questions, watch the answers arrive; 'quit' or Ctrl-D ends.

    python examples/chat.py
    printf 'What is a Python decorator?\nquit\n' | python examples/chat.py    # piped

A replay only knows the questions it recorded (RECORDED_QUESTIONS, in that order); any other
question is answered with a note instead of a made-up reply.
"""

import asyncio
import sys
from collections.abc import AsyncIterator

from _common import accounting, example_client

from aiecs_llm import ConfigurationError, LLMMessage, TextStream

RECORDED_QUESTIONS = [
    "What is a Python decorator?",
    "Show me a one-line example.",
]


async def main() -> None:
    conversation = [LLMMessage("system", "You are a professional programming tutor.")]
    interactive = sys.stdin.isatty()
    async with example_client("chat") as client:
        if interactive:
            print("Ask away ('quit' to stop). Questions a replay knows:")
            print(*(f"  {question}" for question in RECORDED_QUESTIONS), sep="\n")
        while True:
            if interactive:
                print("\nUser: ", end="", flush=True)
            line = sys.stdin.readline()
            question = line.strip()
            if not line or question.lower() in {"quit", "exit"}:
                break
            if not question:
                continue
            if not interactive:
                print(f"\nUser: {question}")  # echo piped input so the transcript reads well
            conversation.append(LLMMessage("user", question))
            print("AI: ", end="", flush=True)
            stream = client.stream_text(conversation, temperature=0.7, max_tokens=300)
            try:
                answer = "".join([chunk async for chunk in _echo(stream)])
            except ConfigurationError:
                conversation.pop()  # not in the recording: the history stays as it was
                print("(not in the recording; a replay knows only RECORDED_QUESTIONS, in order)")
                continue
            conversation.append(LLMMessage("assistant", answer))
            print(f"\n{accounting(stream.response)}")
    print("\nBye.")


async def _echo(stream: TextStream) -> AsyncIterator[str]:
    async for chunk in stream:
        print(chunk, end="", flush=True)
        yield chunk


if __name__ == "__main__":
    asyncio.run(main())
