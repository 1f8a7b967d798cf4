"""aiecs_llm: one async interface to OpenAI, Anthropic, Google and every other LiteLLM provider.

Importing this package does not import LiteLLM (seconds, ~200 MB); that happens on the first call.
The public names are loaded on first access (PEP 562), so ``import aiecs_llm`` and
``aiecs-llm --help`` pay only for what they use; type checkers see them through the
``TYPE_CHECKING`` imports below.

PYTEST_DONT_REWRITE: the package ships a pytest plugin, so pytest would rewrite this module's
asserts and leave its helpers (``@py_builtins``) among the public names.
"""

# Imported under private names: every public name of this module is in __all__ (tested).
import typing as _typing
from importlib import import_module as _import_module

if _typing.TYPE_CHECKING:
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

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "PROVIDERS": "aiecs_llm.providers",
    "AnthropicClient": "aiecs_llm.providers.anthropic",
    "AuthenticationError": "aiecs_llm.errors",
    "BaseLLMClient": "aiecs_llm.client",
    "BudgetExceededError": "aiecs_llm.errors",
    "CircuitOpenError": "aiecs_llm.errors",
    "ConfigurationError": "aiecs_llm.errors",
    "ContentPolicyError": "aiecs_llm.errors",
    "ContextWindowExceededError": "aiecs_llm.errors",
    "GoogleAIClient": "aiecs_llm.providers.google",
    "InvalidRequestError": "aiecs_llm.errors",
    "InvalidResponseError": "aiecs_llm.errors",
    "LLMClientError": "aiecs_llm.errors",
    "LLMMessage": "aiecs_llm.types",
    "LLMResponse": "aiecs_llm.types",
    "LLMSettings": "aiecs_llm.settings",
    "LiteLLMClient": "aiecs_llm.litellm_client",
    "ModelInfo": "aiecs_llm.models",
    "ModelManager": "aiecs_llm.models",
    "ModelNotFoundError": "aiecs_llm.errors",
    "OpenAIClient": "aiecs_llm.providers.openai",
    "ProviderHealth": "aiecs_llm.health",
    "ProviderNotAvailableError": "aiecs_llm.errors",
    "QuotaExceededError": "aiecs_llm.errors",
    "RateLimitError": "aiecs_llm.errors",
    "RedisBudget": "aiecs_llm.redis_budget",
    "RedisCache": "aiecs_llm.redis_cache",
    "RedisConnection": "aiecs_llm.redis_connection",
    "RedisState": "aiecs_llm.redis_state",
    "RequestTimeoutError": "aiecs_llm.errors",
    "RequestTooLargeError": "aiecs_llm.errors",
    "StreamInterruptedError": "aiecs_llm.errors",
    "TextStream": "aiecs_llm.streaming",
    "create_client": "aiecs_llm.providers",
    "health_check": "aiecs_llm.health",
    "validate_api_key": "aiecs_llm.health",
}

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


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aiecs_llm' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    # Cached in the namespace, so the next access is an ordinary attribute lookup.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
