"""Configuration: environment variables, an optional TOML file, and explicit arguments.

Precedence, strongest first: arguments given to a client, the config file, the environment.
The environment uses the names of the AIECS design document (``OPENAI_API_KEY``,
``LLM_DEFAULT_MODEL``, ...); the file has the document's ``providers``, ``defaults`` and ``costs``
sections. Keys are ``SecretStr`` so they never show in a repr, a log line or a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiecs_llm.errors import ConfigurationError

DEFAULT_TEMPERATURE = 0.7
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 2
CONFIG_FILE_ENV = "LLM_CONFIG_FILE"


class ProviderSettings(BaseModel):
    """One provider's section: ``[providers.openai]`` in the file."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = None
    base_url: str | None = None
    models: list[str] = Field(default_factory=list)
    """Models this deployment may use; empty means whatever the provider offers."""


class Defaults(BaseModel):
    """The ``[defaults]`` section: what a call uses when it does not say."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    temperature: float = Field(default=DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0.0)
    """Seconds allowed for one call, retries included."""
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=20)


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

    def as_layer(self) -> dict[str, Any]:
        providers: dict[str, dict[str, Any]] = {
            "openai": {"api_key": self.openai_api_key, "base_url": self.openai_base_url},
            "anthropic": {"api_key": self.anthropic_api_key},
            "google": {"api_key": self.google_api_key},
        }
        defaults = {
            "model": self.default_model,
            "temperature": self.default_temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }
        return {
            "providers": {name: _present(section) for name, section in providers.items()},
            "defaults": _present(defaults),
        }


def _read_environment() -> _Environment:
    try:
        return _Environment()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid environment variable: {_describe(exc)}") from None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigurationError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
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
