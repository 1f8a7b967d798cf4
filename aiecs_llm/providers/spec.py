"""What the client needs to know about a provider, as data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HttpClientKind = Literal["openai_sdk", "litellm_httpx"]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Facts about one provider; adding a provider means one of these and one table row."""

    name: str
    """Our name for it, used in config sections and ``LLMResponse.provider``."""
    client_class: str
    """The name of its client class (``OpenAIClient``), for messages that tell the caller what
    to construct."""
    litellm_provider: str
    """LiteLLM's provider prefix: ``openai/gpt-4o`` → ``openai``."""
    api_key_env: str
    """The environment variable the AIECS design document names for its key."""
    default_model: str
    """The model used when neither the call, the client nor the config names one."""
    default_base_url: str
    """The provider's public endpoint; any other base URL is a proxy or local server."""
    http_client: HttpClientKind
    """Which HTTP client LiteLLM uses on this provider's path, so each of our clients owns and
    closes its own instead of sharing LiteLLM's process-wide cache."""
