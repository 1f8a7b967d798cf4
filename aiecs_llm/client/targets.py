"""From a model string to a ``Target``: the model's provider, keys, endpoint, HTTP client and
limits, as one client sees them.

The client's own ``api_key`` and ``base_url`` apply to its own provider; any other provider (a
fallback, or a per-call model on a generic client) uses the keys and endpoint configured for it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from weakref import WeakKeyDictionary

from pydantic import SecretStr

from aiecs_llm.client.fallback import Target
from aiecs_llm.client.shutdown import CLOSED_CODE
from aiecs_llm.client.validation import check_model_name
from aiecs_llm.config.secrets import Secret
from aiecs_llm.config.settings import LLMSettings, check_key
from aiecs_llm.errors import ConfigurationError, InvalidRequestError
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.providers.resolution import (
    client_class_name,
    prefix_of,
    provider_of,
    registered_spec,
)
from aiecs_llm.providers.spec import ProviderSpec
from aiecs_llm.resilience.limits import ConcurrencyLimit
from aiecs_llm.resilience.state import InProcessState


class Targets:
    """Resolves model strings to targets for one client, and owns that client's HTTP clients."""

    def __init__(
        self,
        *,
        settings: LLMSettings,
        state: InProcessState,
        spec: ProviderSpec | None,
        client_name: str,
        default_model: str | None,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
    ) -> None:
        self.settings = settings
        self.state = state
        self.spec = spec
        self.client_name = client_name
        self.default_model = default_model
        self.timeout = timeout
        if api_key:
            try:
                check_key(api_key)
            except ValueError as exc:
                raise ConfigurationError(f"api_key: {exc}") from None
        self._api_key = SecretStr(api_key) if api_key else None
        self._base_url = base_url
        own = spec or registered_spec(prefix_of(default_model))
        self.own_provider = own.name if own else None
        self.own_litellm_provider = own.litellm_provider if own else prefix_of(default_model)
        self._http_clients: dict[tuple[str, str | None, str | None], Any] = {}
        self._closed = False
        self._concurrency: WeakKeyDictionary[asyncio.AbstractEventLoop, ConcurrencyLimit] = (
            WeakKeyDictionary()
        )

    @property
    def own_key(self) -> str | None:
        """The key given to the client's constructor, for redaction."""
        return Secret(self._api_key.get_secret_value()) if self._api_key else None

    def resolve_model(self, model: str | None) -> str:
        """The LiteLLM model string a call uses: the call's, the client's, the config's, or the
        provider's default.
        """
        if model is not None and not isinstance(model, str):
            raise InvalidRequestError(f"model must be a string, got {type(model).__name__}")
        chosen = model or self.default_model or self.settings.defaults.model
        if chosen is None and self.spec is not None:
            chosen = self.spec.default_model
        if chosen is None or not chosen.strip():
            raise ConfigurationError(
                "no model given: pass model=..., create the client with a model, "
                "or set LLM_DEFAULT_MODEL"
            )
        return self.with_prefix(chosen)

    def with_prefix(self, model: str) -> str:
        """A named client's bare model names are its own; a prefixed name of another registered
        provider (a fallback, say) keeps its prefix.
        """
        if self.spec is None or registered_spec(prefix_of(model)) is not None:
            return check_model_name(model)
        return check_model_name(f"{self.spec.litellm_provider}/{model}")

    def target(self, model: str) -> Target:
        """Everything an attempt on ``model`` needs, in the running event loop."""
        litellm_model = self.with_prefix(model)
        model_name, litellm_provider = provider_of(litellm_model)
        spec = registered_spec(litellm_provider)
        keys = self.keys(spec) if spec else self._unregistered_keys(litellm_provider)
        name = spec.name if spec else litellm_provider
        resilience = self.settings.resilience
        return Target(
            litellm_model=litellm_model,
            model=model_name,
            litellm_provider=litellm_provider,
            provider=name,
            # Rotation needs somewhere to rotate to: a single key is simply used, so that its
            # 401 or 429 reaches the caller as the provider said it.
            keys=(
                self.state.key_pool(litellm_provider, keys, resilience) if len(keys) > 1 else None
            ),
            key=keys[0] if len(keys) == 1 else None,
            base_url=self._base_url_for(spec, litellm_provider),
            limits=self.state.provider_limits(
                name, self.settings.provider(name), resilience, self._client_concurrency()
            ),
        )

    def target_base_url(self, model: str) -> str | None:
        """The endpoint a call to ``model`` goes to (None: LiteLLM's default for the provider)."""
        litellm_provider = provider_of(self.with_prefix(model))[1]
        return self._base_url_for(registered_spec(litellm_provider), litellm_provider)

    def keys(self, spec: ProviderSpec) -> list[str]:
        """The keys for a registered provider; ``ConfigurationError`` naming the variable and
        the argument when there is none and the endpoint is the provider's own.
        """
        own = self.own_litellm_provider in (None, spec.litellm_provider)
        if own and self._api_key:
            return [Secret(self._api_key.get_secret_value())]
        configured = self.settings.provider(spec.name)
        keys: list[str] = [Secret(key.get_secret_value()) for key in configured.all_keys()]
        if not keys and self._base_url_for(spec, spec.litellm_provider) in (
            None,
            spec.default_base_url,
        ):
            client_name = self.client_name if self.spec else client_class_name(spec)
            raise ConfigurationError(
                f"no API key for {spec.name}: set the {spec.api_key_env} environment variable "
                f"or pass {client_name}(api_key=...)"
            )
        return keys

    def http_client(self, spec: ProviderSpec | None, key: str | None, base_url: str | None) -> Any:
        """The HTTP client this client owns for a provider, key and endpoint (None: LiteLLM's
        own handling, for unregistered providers).
        """
        if self._closed:
            raise ConfigurationError(
                f"{self.client_name} was closed while the call was in flight", code=CLOSED_CODE
            )
        if spec is None:
            return None
        slot = (spec.name, key, base_url)
        if slot not in self._http_clients:
            if spec.http_client == "openai_sdk":
                client = _litellm.openai_sdk_client(
                    api_key=key, base_url=base_url, timeout=self.timeout
                )
            else:
                client = _litellm.http_handler(timeout=self.timeout)
            self._http_clients[slot] = client
        return self._http_clients[slot]

    async def close(self) -> None:
        """Close every HTTP client opened so far; none is opened afterwards."""
        self._closed = True
        clients, self._http_clients = list(self._http_clients.values()), {}
        for client in clients:
            closer = getattr(client, "close", None) or client.aclose
            await closer()

    def open_http_clients(self) -> list[Any]:
        """The HTTP clients opened and not yet closed."""
        return list(self._http_clients.values())

    def concurrency_limits(self) -> list[ConcurrencyLimit]:
        """The client-level concurrency limits in use (one per event loop)."""
        return list(self._concurrency.values())

    def _base_url_for(self, spec: ProviderSpec | None, litellm_provider: str) -> str | None:
        own = self.own_litellm_provider in (None, litellm_provider)
        configured = self.settings.provider(spec.name).base_url if spec else None
        base_url = (self._base_url if own else None) or configured
        if spec is not None and base_url in (None, "", spec.default_base_url):
            # The public endpoint is named explicitly: left out, LiteLLM and the OpenAI SDK
            # would read OPENAI_BASE_URL / ANTHROPIC_BASE_URL themselves, behind the back of a
            # configuration that chose not to (the demo, validate_api_key). Not for Gemini:
            # given any base URL, LiteLLM switches to its proxy URL scheme.
            return None if spec.litellm_provider == "gemini" else spec.default_base_url
        return base_url or None

    def _unregistered_keys(self, litellm_provider: str) -> list[str]:
        # Other providers: the constructor's key for its own provider, else LiteLLM reads its
        # documented environment variable itself.
        own = self.own_litellm_provider in (None, litellm_provider)
        return [Secret(self._api_key.get_secret_value())] if own and self._api_key else []

    def _client_concurrency(self) -> ConcurrencyLimit | None:
        capacity = self.settings.resilience.max_concurrency
        if capacity is None:
            return None
        loop = asyncio.get_running_loop()
        if loop not in self._concurrency:
            self._concurrency[loop] = ConcurrencyLimit(capacity)
        return self._concurrency[loop]
