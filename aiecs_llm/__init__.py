"""aiecs_llm: one async interface to OpenAI, Anthropic, Google and every other LiteLLM provider.

Importing this package does not import LiteLLM (seconds, ~200 MB); that happens on the first call.

PYTEST_DONT_REWRITE: the package ships a pytest plugin, so pytest would rewrite this module's
asserts and leave its helpers (``@py_builtins``) among the public names.
"""

from aiecs_llm.client import BaseLLMClient
from aiecs_llm.errors import (
    AuthenticationError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    InvalidRequestError,
    InvalidResponseError,
    LLMClientError,
    ModelNotFoundError,
    ProviderNotAvailableError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    RequestTooLargeError,
    StreamInterruptedError,
)
from aiecs_llm.health import ProviderHealth, health_check, validate_api_key
from aiecs_llm.litellm_client import LiteLLMClient
from aiecs_llm.models import ModelInfo, ModelManager
from aiecs_llm.providers import PROVIDERS, create_client
from aiecs_llm.providers.anthropic import AnthropicClient
from aiecs_llm.providers.google import GoogleAIClient
from aiecs_llm.providers.openai import OpenAIClient
from aiecs_llm.redis_budget import RedisBudget
from aiecs_llm.redis_cache import RedisCache
from aiecs_llm.redis_connection import RedisConnection
from aiecs_llm.redis_state import RedisState
from aiecs_llm.settings import LLMSettings
from aiecs_llm.streaming import TextStream
from aiecs_llm.types import LLMMessage, LLMResponse

__version__ = "0.1.0"

__all__ = [
    "PROVIDERS",
    "AnthropicClient",
    "AuthenticationError",
    "BaseLLMClient",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigurationError",
    "ContentPolicyError",
    "ContextWindowExceededError",
    "GoogleAIClient",
    "InvalidRequestError",
    "InvalidResponseError",
    "LLMClientError",
    "LLMMessage",
    "LLMResponse",
    "LLMSettings",
    "LiteLLMClient",
    "ModelInfo",
    "ModelManager",
    "ModelNotFoundError",
    "OpenAIClient",
    "ProviderHealth",
    "ProviderNotAvailableError",
    "QuotaExceededError",
    "RateLimitError",
    "RedisBudget",
    "RedisCache",
    "RedisConnection",
    "RedisState",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "StreamInterruptedError",
    "TextStream",
    "create_client",
    "health_check",
    "validate_api_key",
]
