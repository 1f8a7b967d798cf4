"""The one request every bench client sends, and what the harness drives: the models, the
prompt and the output budget, the ``BenchClient`` protocol and the error a client raises for an
answer it cannot use. Shared by clients.py and clients_sdk.py.
"""

from __future__ import annotations

from typing import Protocol

MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GEMINI_MODEL = "gemini-2.5-flash"
MAX_TOKENS = 64
API_KEY = "bench-key"
PROMPT = "Say something short about foxes."
MESSAGES = [{"role": "user", "content": PROMPT}]

StreamOutcome = tuple[int, float | None]
"""Content chunks seen, and when the first arrived."""


class BenchClient(Protocol):
    """What the harness drives."""

    async def plain(self) -> None: ...

    async def stream(self) -> StreamOutcome: ...

    async def close(self) -> None: ...


class BadAnswerError(RuntimeError):
    """The server answered something the client could not use (a fault knob, or a bug)."""
