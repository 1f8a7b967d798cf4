"""The project's cassette set: one `Case` per file in cassettes/<provider>/<case>.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .replies import Reply
from .wire import Provider

CASSETTES: Final = Path(__file__).resolve().parents[2] / "cassettes"
MODELS: Final[dict[Provider, str]] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
MISSPELLED_MODELS: Final[dict[Provider, str]] = {
    "openai": "gpt-4o-mni",
    "anthropic": "claude-sonet-4-5",
    "gemini": "gemini-2.5-flahs",
}
HELLO: Final = (
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Say hello in five words."},
)
DEMO: Final = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is asynchronous programming, in one sentence?"},
)
HELLO_TEXT: Final = "Hello there, how are you?"
DEMO_TEXT: Final = (
    "Asynchronous programming is a way of writing code in which a program starts long-running "
    "operations, such as network or disk I/O, and keeps doing other work instead of waiting for "
    "each one to finish."
)
# Token counts as each provider's tokenizer reports them for these prompts.
HELLO_TOKENS: Final[dict[Provider, tuple[int, int]]] = {
    "openai": (24, 7),
    "anthropic": (22, 10),
    "gemini": (13, 7),
}
DEMO_TOKENS: Final[dict[Provider, tuple[int, int]]] = {
    "openai": (27, 38),
    "anthropic": (25, 41),
    "gemini": (15, 37),
}
CONTEXT_TOKENS: Final[dict[Provider, int]] = {
    "openai": 150_008,
    "anthropic": 200_027,
    "gemini": 1_048_620,
}


@dataclass(frozen=True)
class Case:
    """One cassette: the request LiteLLM makes and what the fake server answers."""

    provider: Provider
    name: str
    reply: Reply
    http_status: int  # the status in the recording (what the provider sends)
    stream: bool = False
    model: str = ""  # empty: the provider's default model
    messages: tuple[dict[str, str], ...] = HELLO
    live: bool = False  # whether --live can provoke this answer from the real API
    bad_key: bool = False  # --live sends an invalid key to get the provider's auth error

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.name}"

    @property
    def path(self) -> Path:
        return CASSETTES / self.provider / f"{self.name}.yaml"

    @property
    def litellm_model(self) -> str:
        return f"{self.provider}/{self.model or MODELS[self.provider]}"

    def completion_kwargs(self) -> dict[str, Any]:
        """Arguments for litellm.acompletion, less api_key / api_base."""
        kwargs: dict[str, Any] = {
            "model": self.litellm_model,
            "messages": [dict(message) for message in self.messages],
            "max_tokens": 50,
            "temperature": 0,
            "num_retries": 0,
            "max_retries": 0,
        }
        if self.stream:
            # Sent on the wire only to OpenAI; LiteLLM needs it to report usage for all three.
            kwargs |= {"stream": True, "stream_options": {"include_usage": True}}
        return kwargs


def build_cases() -> list[Case]:
    cases: list[Case] = []
    providers: tuple[Provider, ...] = ("openai", "anthropic", "gemini")
    for provider in providers:
        prompt, completion = HELLO_TOKENS[provider]
        hello = Reply.ok(HELLO_TEXT, prompt_tokens=prompt, completion_tokens=completion, chunks=4)
        demo_prompt, demo_completion = DEMO_TOKENS[provider]
        demo = Reply.ok(DEMO_TEXT, prompt_tokens=demo_prompt, completion_tokens=demo_completion)
        # Gemini rejects a bad key with 400 INVALID_ARGUMENT / API_KEY_INVALID, never 401.
        auth_status = 400 if provider == "gemini" else 401
        context = Reply.context_length_exceeded(prompt_tokens=CONTEXT_TOKENS[provider])
        cases += [
            Case(provider, "success", hello, 200, live=True),
            Case(provider, "stream", hello, 200, stream=True, live=True),
            Case(
                provider, "error_401", Reply.invalid_api_key(), auth_status, live=True, bad_key=True
            ),
            Case(
                provider,
                "error_404",
                Reply.model_not_found(),
                404,
                model=MISSPELLED_MODELS[provider],
                live=True,
            ),
            Case(provider, "error_429", Reply.rate_limited(retry_after=7), 429),
            # Errors on stream=true requests are plain JSON bodies, not SSE.
            Case(provider, "stream_error_429", Reply.rate_limited(retry_after=7), 429, stream=True),
            Case(provider, "error_400_context", context, 400),
            Case(provider, "error_500", Reply.server_error(), 500),
            Case(provider, "error_503", Reply.unavailable(), 503),
            Case(provider, "demo_conversation", demo, 200, messages=DEMO, live=True),
        ]
    cases += [
        Case("anthropic", "error_529", Reply.overloaded(), 529),
        Case(
            "openai",
            "stream_error_401",
            Reply.invalid_api_key(),
            401,
            stream=True,
            live=True,
            bad_key=True,
        ),
    ]
    return sorted(cases, key=lambda case: case.id)


CASES: Final = build_cases()
