"""Configuration: environment variables, an optional TOML file, and explicit arguments.

Precedence, strongest first: arguments given to a client, the config file, the environment.
The environment uses the names of the AIECS design document (``OPENAI_API_KEY``,
``LLM_DEFAULT_MODEL``, ...); the file has the document's ``providers``, ``defaults`` and ``costs``
sections. Keys are ``SecretStr`` so they never show in a repr, a log line or a traceback.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiecs_llm.errors import ConfigurationError

DEFAULT_TEMPERATURE = 0.7
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_STREAM_IDLE_TIMEOUT = 30.0
DEFAULT_MAX_RETRY_AFTER = 60.0
DEFAULT_BREAKER_FAILURES = 5
DEFAULT_BREAKER_COOLDOWN = 30.0
DEFAULT_KEY_COOLDOWN = 30.0
DEFAULT_MAX_KEY_COOLDOWN = 3600.0
DEFAULT_RATE_LIMIT_QUEUE = 1000
DEFAULT_HEDGE_DELAY = 2.0
DEFAULT_HEDGE_PERCENTILE = 0.95
CONFIG_FILE_ENV = "LLM_CONFIG_FILE"


class ProviderSettings(BaseModel):
    """One provider's section: ``[providers.openai]`` in the file."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = None
    api_keys: list[SecretStr] = Field(default_factory=list)
    """Further keys to rotate through (``OPENAI_API_KEY_1``, ``OPENAI_API_KEY_2``, ...)."""
    base_url: str | None = None
    models: list[str] = Field(default_factory=list)
    """Models this deployment may use; empty means whatever the provider offers."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests in flight to this provider from the whole process."""
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)

    @field_validator("api_key", "api_keys")
    @classmethod
    def _keys_fit_in_a_header(
        cls, value: SecretStr | list[SecretStr] | None
    ) -> SecretStr | list[SecretStr] | None:
        for key in value if isinstance(value, list) else [value]:
            if key is not None:
                check_key(key.get_secret_value())
        return value

    def all_keys(self) -> list[SecretStr]:
        """Every configured key, the single ``api_key`` first, without duplicates."""
        seen: dict[str, SecretStr] = {}
        for key in ([self.api_key] if self.api_key else []) + self.api_keys:
            seen.setdefault(key.get_secret_value(), key)
        return list(seen.values())


def check_key(key: str) -> None:
    """Raise ``ValueError`` (which never quotes the key) unless ``key`` can be sent as an HTTP
    header value: printable ASCII only. A pasted key with a typographic character or a line
    break otherwise fails every call deep inside the HTTP client, as a retried "500".
    """
    if not all(" " <= char <= "~" for char in key):
        raise ValueError("an API key may hold printable ASCII characters only")


class Defaults(BaseModel):
    """The ``[defaults]`` section: what a call uses when it does not say."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    temperature: float = Field(default=DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0.0)
    """Seconds allowed for one call, retries included."""
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=20)


class Resilience(BaseModel):
    """The ``[resilience]`` section: limits, breaker and rotation behaviour."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests in flight from one client; None for no client-level limit."""
    stream_idle_timeout: float = Field(default=DEFAULT_STREAM_IDLE_TIMEOUT, gt=0.0)
    """Seconds a started stream may stay silent before it is failed."""
    max_retry_after: float = Field(default=DEFAULT_MAX_RETRY_AFTER, gt=0.0)
    """Longest server-requested wait honoured; a longer one fails at once."""
    breaker_failures: int = Field(default=DEFAULT_BREAKER_FAILURES, ge=1)
    """Consecutive failures that open a route's circuit."""
    breaker_cooldown: float = Field(default=DEFAULT_BREAKER_COOLDOWN, gt=0.0)
    """Seconds an open route is skipped before it is probed again."""
    key_cooldown: float = Field(default=DEFAULT_KEY_COOLDOWN, gt=0.0)
    max_key_cooldown: float = Field(default=DEFAULT_MAX_KEY_COOLDOWN, gt=0.0)
    """Seconds a rate-limited key rests when the provider did not say how long."""
    rate_limit_queue: int = Field(default=DEFAULT_RATE_LIMIT_QUEUE, ge=1)
    """Callers that may wait for a provider's rate limit before new ones fail at once."""
    hedge_delay: float = Field(default=DEFAULT_HEDGE_DELAY, gt=0.0)
    """Seconds before a hedged call sends its second request, until enough latencies are known."""
    hedge_percentile: float = Field(default=DEFAULT_HEDGE_PERCENTILE, gt=0.0, lt=1.0)
    """Latency percentile after which a hedged call sends its second request."""


class TagBudget(BaseModel):
    """Limits for the calls carrying one tag: ``[budgets.tags."service=billing"]``."""

    model_config = ConfigDict(extra="forbid")

    daily: float | None = Field(default=None, ge=0.0)
    monthly: float | None = Field(default=None, ge=0.0)


class Budgets(BaseModel):
    """The ``[budgets]`` section: USD limits per day and month, globally and per tag."""

    model_config = ConfigDict(extra="forbid")

    daily: float | None = Field(default=None, ge=0.0)
    monthly: float | None = Field(default=None, ge=0.0)
    timezone: str = "UTC"
    """Where days and months begin (an IANA name such as ``Europe/Berlin``)."""
    tags: dict[str, TagBudget] = Field(default_factory=dict)
    """``"key=value"`` -> limits for the calls tagged so."""
    allow_unpriced: bool = False
    """Let a call whose price nobody knows (not in LiteLLM's map, no ``[costs]`` entry) through
    a budget, held at $0; otherwise such a call is refused before it is sent."""


class CacheSettings(BaseModel):
    """The ``[cache]`` section: the response cache."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    backend: Literal["memory", "sqlite", "redis"] = "memory"
    """``redis`` shares the cache through the server of ``[state] url``."""
    path: str | None = None
    """SQLite file for the ``sqlite`` backend."""
    ttl: float | None = Field(default=3600.0, gt=0.0)
    """Seconds an answer stays valid; None keeps it until evicted."""
    max_entries: int = Field(default=10_000, ge=1)
    deterministic_only: bool = True
    """Cache only ``temperature=0`` calls unless a call says ``cache="force"``."""


class Ledger(BaseModel):
    """The ``[ledger]`` section: where every call is recorded."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    """SQLite file; None keeps the ledger in memory (lost at exit)."""


class StateSettings(BaseModel):
    """The ``[state]`` section: where budgets, rate limits, breakers and key cool-downs live."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = None
    """``redis://[:password@]host:port/db`` to share them with every replica; None keeps them
    in this process. A secret, because the URL may carry the password."""
    budget_fail_open: bool = False
    """While Redis is unreachable, let calls through (logged) instead of refusing them."""


class TokenPrice(BaseModel):
    """A per-model price override in USD per 1,000 tokens, as in the spec's ``costs`` table."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0.0)
    output: float = Field(ge=0.0)


class LLMSettings(BaseModel):
    """Everything the clients read from configuration."""

    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    costs: dict[str, TokenPrice] = Field(default_factory=dict)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    """Model -> the models to try, in order, when it cannot answer."""
    resilience: Resilience = Field(default_factory=Resilience)
    budgets: Budgets = Field(default_factory=Budgets)
    ledger: Ledger = Field(default_factory=Ledger)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    state: StateSettings = Field(default_factory=StateSettings)

    def provider(self, name: str) -> ProviderSettings:
        """The section for ``name``, empty when it is not configured."""
        return self.providers.get(name) or ProviderSettings()

    @classmethod
    def load(cls, config_file: str | Path | None = None) -> LLMSettings:
        """Read the environment, then overlay the config file (``config_file`` or the file named
        by ``LLM_CONFIG_FILE``).
        """
        environment = _read_environment()
        layered = environment.as_layer()
        path = config_file or environment.config_file
        if path is not None:
            _deep_merge(layered, _read_config_file(Path(path)))
        try:
            return cls.model_validate(layered)
        except ValidationError as exc:
            source = f"config file {path}" if path is not None else "environment"
            raise ConfigurationError(
                f"invalid configuration in {source}: {_describe(exc)}"
            ) from None


class _Environment(BaseSettings):
    """The flat environment variables named in the AIECS design document."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False)

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    # The spec names GOOGLE_AI_API_KEY; LiteLLM and Google's own tools use GEMINI_API_KEY.
    google_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GOOGLE_AI_API_KEY", "GEMINI_API_KEY")
    )
    default_model: str | None = Field(default=None, validation_alias="LLM_DEFAULT_MODEL")
    default_temperature: float | None = Field(
        default=None, validation_alias="LLM_DEFAULT_TEMPERATURE"
    )
    max_tokens: int | None = Field(default=None, validation_alias="LLM_MAX_TOKENS")
    timeout: float | None = Field(default=None, validation_alias="LLM_TIMEOUT")
    max_retries: int | None = Field(default=None, validation_alias="LLM_MAX_RETRIES")
    config_file: str | None = Field(default=None, validation_alias=CONFIG_FILE_ENV)
    max_concurrency: int | None = Field(default=None, validation_alias="LLM_MAX_CONCURRENCY")
    stream_idle_timeout: float | None = Field(
        default=None, validation_alias="LLM_STREAM_IDLE_TIMEOUT"
    )
    daily_budget: float | None = Field(default=None, validation_alias="LLM_DAILY_BUDGET")
    monthly_budget: float | None = Field(default=None, validation_alias="LLM_MONTHLY_BUDGET")
    budget_timezone: str | None = Field(default=None, validation_alias="LLM_BUDGET_TIMEZONE")
    usage_db: str | None = Field(default=None, validation_alias="LLM_USAGE_DB")
    state_url: SecretStr | None = Field(default=None, validation_alias="LLM_STATE_URL")
    budget_fail_open: bool | None = Field(default=None, validation_alias="LLM_BUDGET_FAIL_OPEN")
    budget_allow_unpriced: bool | None = Field(
        default=None, validation_alias="LLM_BUDGET_ALLOW_UNPRICED"
    )

    @field_validator("openai_api_key", "anthropic_api_key", "google_api_key")
    @classmethod
    def _key_fits_in_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_key(value.get_secret_value())
        return value

    def as_layer(self) -> dict[str, Any]:
        providers: dict[str, dict[str, Any]] = {
            "openai": {
                "api_key": self.openai_api_key,
                "api_keys": _numbered_keys("OPENAI_API_KEY") or None,
                "base_url": self.openai_base_url,
            },
            "anthropic": {
                "api_key": self.anthropic_api_key,
                "api_keys": _numbered_keys("ANTHROPIC_API_KEY") or None,
            },
            "google": {
                "api_key": self.google_api_key,
                "api_keys": (_numbered_keys("GOOGLE_AI_API_KEY") + _numbered_keys("GEMINI_API_KEY"))
                or None,
            },
        }
        defaults = {
            "model": self.default_model,
            "temperature": self.default_temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }
        resilience = {
            "max_concurrency": self.max_concurrency,
            "stream_idle_timeout": self.stream_idle_timeout,
        }
        budgets = {
            "daily": self.daily_budget,
            "monthly": self.monthly_budget,
            "timezone": self.budget_timezone,
            "allow_unpriced": self.budget_allow_unpriced,
        }
        return {
            "providers": {name: _present(section) for name, section in providers.items()},
            "defaults": _present(defaults),
            "resilience": _present(resilience),
            "budgets": _present(budgets),
            "ledger": _present({"path": self.usage_db}),
            "state": _present({"url": self.state_url, "budget_fail_open": self.budget_fail_open}),
        }


def _read_environment() -> _Environment:
    try:
        return _Environment()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid environment variable: {_describe(exc)}") from None


def _numbered_keys(variable: str) -> list[str]:
    """``OPENAI_API_KEY_1``, ``OPENAI_API_KEY_2``, ... in numeric order (gaps allowed)."""
    pattern = re.compile(rf"^{re.escape(variable)}_(\d+)$")
    numbered = []
    for name, value in os.environ.items():
        if (match := pattern.match(name)) and value.strip():
            try:
                check_key(value.strip())
            except ValueError as exc:
                raise ConfigurationError(f"invalid environment variable {name}: {exc}") from None
            numbered.append((int(match.group(1)), value.strip()))
    return [value for _, value in sorted(numbered)]


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from None


def _describe(exc: ValidationError) -> str:
    # Name the field and the problem but never echo the value: it may be a key.
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(root)"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def _present(section: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in section.items() if value is not None}


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
