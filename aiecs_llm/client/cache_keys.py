"""Which calls the response cache takes, and the key a call is cached under: everything that
could change its answer, the endpoint included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiecs_llm.accounting.cache import ResponseCache, cache_key
from aiecs_llm.client.targets import Targets
from aiecs_llm.providers.resolution import provider_of
from aiecs_llm.transport.call import CallRequest


class CacheKeys:
    """Cache keys for one client's calls.

    Args:
        cache: the response cache, or None.
        targets: where each model is sent.
        default_params: LiteLLM parameters the client sends with every call.
        default_temperature: the temperature of a call that names none.

    """

    def __init__(
        self,
        cache: ResponseCache | None,
        targets: Targets,
        default_params: Mapping[str, Any],
        *,
        default_temperature: float,
    ) -> None:
        self._cache = cache
        self._targets = targets
        self._default_params = default_params
        self._default_temperature = default_temperature

    def temperature(self, request: CallRequest) -> float:
        """The call's temperature, defaulted: what the cache policy judges the call by."""
        if request.temperature is not None:
            return request.temperature
        return self._default_temperature

    def key(self, request: CallRequest) -> str | None:
        """The call's cache key, or None when the cache policy leaves this call out."""
        cache = self._cache
        if cache is None or not cache.should_cache(self.temperature(request), request.cache_mode):
            return None
        litellm_provider = provider_of(request.primary_model)[1]
        params = {
            "temperature": self.temperature(request),
            "max_tokens": request.max_tokens,
            # Another endpoint may serve another model under the same name.
            "api_base": self._targets.target_base_url(request.primary_model),
            **self._default_params,
            **request.extra,
        }
        return cache_key(
            provider=litellm_provider,
            model=request.primary_model,
            messages=[message.model_dump() for message in request.messages],
            params=params,
        )
