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
    from aiecs_llm.accounting.alerts import AlertManager
    from aiecs_llm.accounting.budget import BudgetController
    from aiecs_llm.accounting.cache import ResponseCache
    from aiecs_llm.accounting.ledger import UsageLedger
    from aiecs_llm.accounting.monitor import LLMMonitor
    from aiecs_llm.client.base import BaseLLMClient
    from aiecs_llm.client.health import ProviderHealth, health_check, validate_api_key
    from aiecs_llm.client.litellm_client import LiteLLMClient
    from aiecs_llm.client.named import (
        PROVIDERS,
        AnthropicClient,
        GoogleAIClient,
        OpenAIClient,
        create_client,
    )
    from aiecs_llm.client.text_stream import TextStream
    from aiecs_llm.config.settings import LLMSettings
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
    from aiecs_llm.providers.catalogue import ModelInfo, ModelManager
    from aiecs_llm.redis.budget import RedisBudget
    from aiecs_llm.redis.cache import RedisCache
    from aiecs_llm.redis.connection import RedisConnection
    from aiecs_llm.redis.state import RedisState
    from aiecs_llm.types import LLMMessage, LLMResponse

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AlertManager": "aiecs_llm.accounting.alerts",
    "BudgetController": "aiecs_llm.accounting.budget",
    "LLMMonitor": "aiecs_llm.accounting.monitor",
    "ResponseCache": "aiecs_llm.accounting.cache",
    "UsageLedger": "aiecs_llm.accounting.ledger",
    "PROVIDERS": "aiecs_llm.client.named",
    "AnthropicClient": "aiecs_llm.client.named",
    "AuthenticationError": "aiecs_llm.errors",
    "BaseLLMClient": "aiecs_llm.client.base",
    "BudgetExceededError": "aiecs_llm.errors",
    "CircuitOpenError": "aiecs_llm.errors",
    "ConfigurationError": "aiecs_llm.errors",
    "ContentPolicyError": "aiecs_llm.errors",
    "ContextWindowExceededError": "aiecs_llm.errors",
    "GoogleAIClient": "aiecs_llm.client.named",
    "InvalidRequestError": "aiecs_llm.errors",
    "InvalidResponseError": "aiecs_llm.errors",
    "LLMClientError": "aiecs_llm.errors",
    "LLMMessage": "aiecs_llm.types",
    "LLMResponse": "aiecs_llm.types",
    "LLMSettings": "aiecs_llm.config.settings",
    "LiteLLMClient": "aiecs_llm.client.litellm_client",
    "ModelInfo": "aiecs_llm.providers.catalogue",
    "ModelManager": "aiecs_llm.providers.catalogue",
    "ModelNotFoundError": "aiecs_llm.errors",
    "OpenAIClient": "aiecs_llm.client.named",
    "ProviderHealth": "aiecs_llm.client.health",
    "ProviderNotAvailableError": "aiecs_llm.errors",
    "QuotaExceededError": "aiecs_llm.errors",
    "RateLimitError": "aiecs_llm.errors",
    "RedisBudget": "aiecs_llm.redis.budget",
    "RedisCache": "aiecs_llm.redis.cache",
    "RedisConnection": "aiecs_llm.redis.connection",
    "RedisState": "aiecs_llm.redis.state",
    "RequestTimeoutError": "aiecs_llm.errors",
    "RequestTooLargeError": "aiecs_llm.errors",
    "StreamInterruptedError": "aiecs_llm.errors",
    "TextStream": "aiecs_llm.client.text_stream",
    "create_client": "aiecs_llm.client.named",
    "health_check": "aiecs_llm.client.health",
    "validate_api_key": "aiecs_llm.client.health",
}

__all__ = [
    "PROVIDERS",
    "AlertManager",
    "AnthropicClient",
    "AuthenticationError",
    "BaseLLMClient",
    "BudgetController",
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
    "LLMMonitor",
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
    "ResponseCache",
    "StreamInterruptedError",
    "TextStream",
    "UsageLedger",
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
