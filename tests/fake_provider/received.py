"""What the server received, and which provider API a request is for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from .wire import Provider

# LiteLLM's gemini/ provider appends models/<model>:<method> to api_base, so the version
# segment has to be part of `gemini_base`; v1alpha is what it uses for Gemini 3 by default.
GEMINI_PATH: Final = re.compile(
    r"^/(?:v1|v1beta|v1alpha)/models/(?P<model>[^/:]+)"
    r":(?P<method>generateContent|streamGenerateContent)$"
)


def provider_for(path: str) -> Provider | None:
    """The provider whose API lives at `path`, or None."""
    if path == "/v1/chat/completions":
        return "openai"
    if path == "/v1/messages":
        return "anthropic"
    if GEMINI_PATH.match(path):
        return "gemini"
    return None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, for assertions."""

    provider: Provider | None  # None when the path matched no provider API
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    json: Any  # the parsed body; None when it was empty or not JSON
    body: bytes

    @property
    def model(self) -> str | None:
        """The model asked for: the body's "model", or the model in a Gemini URL."""
        match = GEMINI_PATH.match(self.path)
        if match:
            return match["model"]
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed (SSE) answer."""
        if self.provider == "gemini":
            return self.path.endswith(":streamGenerateContent")
        return isinstance(self.json, dict) and self.json.get("stream") is True

    @property
    def include_usage(self) -> bool:
        """OpenAI's stream_options.include_usage."""
        options = self.json.get("stream_options") if isinstance(self.json, dict) else None
        return isinstance(options, dict) and bool(options.get("include_usage"))

    @property
    def api_key(self) -> str:
        """The key as sent, whichever way the provider takes it."""
        headers = self.headers
        return (
            headers.get("x-api-key")
            or headers.get("x-goog-api-key")
            or self.query.get("key")
            or headers.get("authorization", "").removeprefix("Bearer ")
        )
