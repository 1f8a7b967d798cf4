"""Code generation: ask for code, extract it from the answer and check that it parses.

python examples/code_generation.py
"""

import ast
import asyncio
import re

from _common import accounting, example_client

from aiecs_llm import LLMMessage, OpenAIClient

FENCED_CODE = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)


async def generate_code(client: OpenAIClient, requirements: str, language: str = "python") -> str:
    messages = [
        LLMMessage(
            "system",
            f"You are a professional {language} programmer capable of generating high-quality "
            "code based on requirements.",
        ),
        LLMMessage(
            "user",
            f"Please generate {language} code based on the following requirements:\n{requirements}",
        ),
    ]
    # A low temperature favours the most likely, conventional code.
    response = await client.generate_text(messages, temperature=0.2, max_tokens=1000)
    print(accounting(response))
    return response.content


async def main() -> None:
    requirements = "Implement a quicksort algorithm with detailed comments"
    async with example_client("code_generation") as client:
        answer = await generate_code(client, requirements)
    print(f"\nGenerated code:\n{answer}\n")
    match = FENCED_CODE.search(answer)
    code = match.group(1) if match else answer
    try:
        ast.parse(code)  # parsed only: generated code is not run without a review
    except SyntaxError as error:
        print(f"Syntax check: the code does not parse ({error})")
    else:
        print(f"Syntax check: {len(code.splitlines())} lines of Python that parse")


if __name__ == "__main__":
    asyncio.run(main())
