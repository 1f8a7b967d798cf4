"""ModelManager against LiteLLM's bundled model map (LiteLLM 1.110.2).

The numbers below are the map's; if a LiteLLM upgrade changes them, these tests say so.
"""

import subprocess
import sys
from datetime import date

import pytest
from structlog.testing import capture_logs

from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.errors import ConfigurationError
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.providers.catalogue import MODEL_DEFAULT, MODEL_FALLBACK, ModelInfo, ModelManager

# The map's deprecation dates are absolute; pin "today" so the tests do not age.
TODAY = date(2026, 11, 25)


def manager(fallbacks=None, **settings):
    return ModelManager(LLMSettings.model_validate(settings), fallbacks)


def configured(provider, models, **settings):
    return manager(providers={provider: {"models": models}}, **settings)


def model_cost():
    return _litellm.litellm().model_cost


# providers / available_models


def test_providers_are_the_registered_ones():
    assert manager().providers() == ["openai", "anthropic", "google"]


def test_available_models_come_from_config_when_set():
    models = configured("openai", ["gpt-4o", "openai/gpt-4o-mini", "gpt-4o"])
    # Config order kept, the LiteLLM prefix dropped, duplicates removed.
    assert models.available_models("openai") == ["gpt-4o", "gpt-4o-mini"]
    # Other providers still come from the map.
    assert "claude-sonnet-4-5" in models.available_models("anthropic")


def test_openai_models_from_the_map_are_bare_sorted_chat_models():
    names = manager().available_models("openai")
    assert "gpt-4o-mini" in names
    assert "gpt-4.1" in names
    assert names == sorted(names)
    assert not any(name.startswith(("openai/", "ft:")) for name in names)
    # Embedding, speech, image and transcription models are not chat models.
    for other in ("text-embedding-3-small", "tts-1", "whisper-1", "gpt-image-1", "dall-e-3"):
        assert other not in names
    for name in names:
        assert model_cost()[name]["mode"] == "chat"
    # "openai/container" is a tool price filed under mode "chat" in the map.
    assert "container" not in names


def test_anthropic_and_google_models_from_the_map():
    assert "claude-sonnet-4-5" in manager().available_models("anthropic")
    google = manager().available_models("google")
    assert "gemini-2.5-flash" in google
    assert "gemini-2.5-pro" in google
    assert not any(name.startswith("gemini/") for name in google)
    assert "gemini-embedding-001" not in google


@pytest.mark.parametrize("provider", ["gemini", "azure", ""])
def test_unknown_provider_names_the_known_ones(provider):
    with pytest.raises(ConfigurationError, match="openai, anthropic, google"):
        manager().available_models(provider)


# default_model


def test_default_model_is_the_providers_own_without_config():
    models = manager()
    assert models.default_model("openai") == "gpt-4o-mini"
    assert models.default_model("anthropic") == "claude-sonnet-4-5"
    assert models.default_model("google") == "gemini-2.5-flash"


def test_configured_default_applies_only_to_its_provider():
    models = manager(defaults={"model": "anthropic/claude-haiku-4-5"})
    assert models.default_model("anthropic") == "claude-haiku-4-5"
    assert models.default_model("openai") == "gpt-4o-mini"
    assert models.default_model("google") == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("configured_default", "provider", "expected"),
    [
        ("claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
        ("gemini/gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("gpt-4.1", "openai", "gpt-4.1"),
        ("gpt-4.1", "anthropic", "claude-sonnet-4-5"),
        ("groq/openai/gpt-oss-20b", "openai", "gpt-4o-mini"),
    ],
)
def test_configured_default_bare_or_prefixed(configured_default, provider, expected):
    models = manager(defaults={"model": configured_default})
    assert models.default_model(provider) == expected


def test_configured_default_may_be_a_configured_model_the_map_does_not_know():
    models = configured("openai", ["my-deployment"], defaults={"model": "my-deployment"})
    assert models.default_model("openai") == "my-deployment"


# validate_model


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("openai", "openai/gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-flash"),
        ("google", "gemini/gemini-2.5-flash"),
    ],
)
async def test_validate_model_accepts_chat_models_of_the_provider(provider, model):
    assert await manager().validate_model(provider, model) is True


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "claude-sonnet-4-5"),
        ("openai", "text-embedding-3-small"),
        ("openai", "gpt-9-ultra"),
        ("anthropic", "gpt-4o-mini"),
        ("google", "gemini-embedding-001"),
        ("google", "openai/gpt-4o-mini"),
    ],
)
async def test_validate_model_rejects_others(provider, model):
    assert await manager().validate_model(provider, model) is False


async def test_validate_model_accepts_configured_and_known_models():
    models = configured("openai", ["my-deployment"])
    assert await models.validate_model("openai", "my-deployment") is True
    # Outside the configured list but a real OpenAI chat model in LiteLLM's map.
    assert await models.validate_model("openai", "gpt-4o-mini") is True


async def test_validate_model_unknown_provider():
    with pytest.raises(ConfigurationError):
        await manager().validate_model("nope", "gpt-4o-mini")


# get_available_model: the spec's three branches


def test_requested_model_is_used_when_available():
    with capture_logs() as logs:
        assert manager().get_available_model("openai", "gpt-4o") == "gpt-4o"
        assert manager().get_available_model("google", "gemini/gemini-2.5-pro") == "gemini-2.5-pro"
    assert logs == []


def test_unavailable_model_falls_back_to_its_first_available_fallback():
    # The spec's own example: gpt-4 -> gpt-3.5-turbo.
    models = manager(
        {"gpt-4": ["gpt-4-turbo", "gpt-3.5-turbo"]},
        providers={"openai": {"models": ["gpt-3.5-turbo", "gpt-4o-mini"]}},
    )
    with capture_logs() as logs:
        assert models.get_available_model("openai", "gpt-4") == "gpt-3.5-turbo"
    assert logs == [
        {
            "event": MODEL_FALLBACK,
            "log_level": "warning",
            "provider": "openai",
            "requested": "gpt-4",
            "model": "gpt-3.5-turbo",
        }
    ]
    assert MODEL_FALLBACK == "llm.model.fallback"


def test_without_an_available_fallback_the_providers_default_is_used():
    models = manager({"gpt-4": ["gpt-3.5-turbo-0301"]})
    with capture_logs() as logs:
        assert models.get_available_model("openai", "gpt-4-32k") == "gpt-4o-mini"
        assert models.get_available_model("openai", "gpt-4-0301") == "gpt-4o-mini"
    assert [(log["event"], log["log_level"], log["model"]) for log in logs] == [
        (MODEL_DEFAULT, "warning", "gpt-4o-mini"),
        (MODEL_DEFAULT, "warning", "gpt-4o-mini"),
    ]
    assert logs[0]["requested"] == "gpt-4-32k"
    assert MODEL_DEFAULT == "llm.model.default"


def test_default_uses_the_configured_default_model():
    models = manager(defaults={"model": "gemini/gemini-2.5-pro"})
    with capture_logs() as logs:
        assert models.get_available_model("google", "gemini-1.0-pro") == "gemini-2.5-pro"
    assert logs[0]["event"] == MODEL_DEFAULT


def test_default_outside_the_configured_list_gives_way_to_the_first_listed():
    # The spec falls back to available[0]; the config excluded the built-in default.
    models = configured("anthropic", ["claude-haiku-4-5", "claude-opus-4-5"])
    with capture_logs() as logs:
        assert models.get_available_model("anthropic", "claude-3-opus") == "claude-haiku-4-5"
    assert logs[0]["model"] == "claude-haiku-4-5"


def test_fallbacks_keyed_by_prefixed_names_work_too():
    models = ModelManager(LLMSettings(), {"openai/gpt-9": ["gpt-4.1-mini"]})
    with capture_logs() as logs:
        assert models.get_available_model("openai", "openai/gpt-9") == "gpt-4.1-mini"
    assert logs[0]["event"] == MODEL_FALLBACK


# info


def test_info_for_openai():
    info = manager().info("gpt-4o-mini")
    assert info == ModelInfo(
        model="openai/gpt-4o-mini",
        provider="openai",
        context_window=128000,
        max_output_tokens=16384,
        input_price_per_million=0.15,
        output_price_per_million=0.60,
        deprecation_date=date(2027, 1, 14),
        successor_model="openai/gpt-6-luna",
        supports_reasoning=False,
    )
    assert manager().info("openai/gpt-4o-mini") == info


def test_info_for_anthropic():
    info = manager().info("claude-sonnet-4-5")
    assert info is not None
    assert info.model == "anthropic/claude-sonnet-4-5"
    assert info.provider == "anthropic"
    assert info.context_window == 200000
    assert info.max_output_tokens == 64000
    assert (info.input_price_per_million, info.output_price_per_million) == (3.0, 15.0)
    assert info.supports_reasoning is True
    assert manager().info("anthropic/claude-sonnet-4-5") == info


def test_info_for_google_prefers_ai_studio_over_vertex_for_a_bare_name():
    info = manager().info("gemini/gemini-2.5-flash")
    assert info is not None
    assert info.model == "gemini/gemini-2.5-flash"
    assert info.provider == "google"
    assert info.context_window == 1048576
    assert info.max_output_tokens == 65536
    assert (info.input_price_per_million, info.output_price_per_million) == (0.30, 2.50)
    assert info.supports_reasoning is True
    # The map's bare "gemini-2.5-flash" row is Vertex AI's (65535 output tokens).
    assert manager().info("gemini-2.5-flash") == info
    vertex = manager().info("vertex_ai/gemini-2.5-flash")
    assert vertex is not None
    assert (vertex.provider, vertex.max_output_tokens) == ("vertex_ai", 65535)


def test_info_for_providers_we_do_not_register():
    info = manager().info("mistral/mistral-large-latest")
    assert info is not None
    assert (info.model, info.provider) == ("mistral/mistral-large-latest", "mistral")
    assert info.context_window is not None


@pytest.mark.parametrize(
    "model", ["gpt-9-ultra", "openai/claude-sonnet-4-5", "nope/gpt-4o", "", "sample_spec"]
)
def test_info_is_none_for_unknown_models(model):
    assert manager().info(model) is None


# larger_context


def test_larger_context_prefers_the_smallest_window_that_fits():
    candidates = ["gpt-4", "gpt-4.1-mini", "claude-sonnet-4-5", "claude-haiku-4-5", "nope"]
    models = manager()
    # gpt-4: 8192, gpt-4.1-mini: 1047576, both Claude models: 200000.
    assert models.larger_context("gpt-4o-mini", candidates, 150_000) == "claude-sonnet-4-5"
    assert models.larger_context("gpt-4o-mini", candidates, 300_000) == "gpt-4.1-mini"
    assert models.larger_context("gpt-4o-mini", candidates, 2_000_000) is None
    assert models.larger_context("gpt-4o-mini", [], 1) is None


def test_larger_context_only_offers_a_larger_window_than_the_current_one():
    models = manager()
    # The count may be an underestimate: a same-size window would be refused again.
    assert models.larger_context("claude-sonnet-4-5", ["claude-haiku-4-5"], 1000) is None
    assert models.larger_context("gpt-4", ["gpt-4o", "gpt-4"], 1000) == "gpt-4o"
    # An unknown current model sets no floor; candidates keep the caller's spelling.
    assert models.larger_context("", ["openai/gpt-4", "gpt-4o"], 5000) == "openai/gpt-4"


# deprecation


def test_deprecation_warning_names_date_and_successor():
    warning = manager().deprecation_warning("gpt-4", today=TODAY)
    assert warning == (
        "openai/gpt-4 was deprecated on 2026-10-23; "
        "LiteLLM names openai/gpt-5.6-sol as its successor"
    )
    gemini = manager().deprecation_warning("gemini/gemini-3.1-flash-lite-preview", today=TODAY)
    assert gemini is not None
    assert "2026-05-25" in gemini
    assert "gemini/gemini-3.1-flash-lite" in gemini


def test_deprecation_warning_within_thirty_days():
    models = manager()
    soon = models.deprecation_warning("claude-sonnet-4-5", today=date(2026, 11, 1))
    assert soon == (
        "anthropic/claude-sonnet-4-5 will be deprecated on 2026-11-30; "
        "LiteLLM names anthropic/claude-sonnet-5-5 as its successor"
    )
    assert models.deprecation_warning("claude-sonnet-4-5", today=date(2026, 10, 30)) is None


def test_deprecation_warning_without_a_successor():
    warning = manager().deprecation_warning("gpt-3.5-turbo-16k", today=TODAY)
    assert warning is not None
    assert warning.endswith("no successor named")


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gpt-5.1", "gpt-9-ultra"])
def test_no_deprecation_warning_for_current_or_unknown_models(model):
    assert manager().deprecation_warning(model, today=TODAY) is None


def test_deprecated_property_uses_today():
    gpt4 = manager().info("gpt-4")
    current = manager().info("claude-sonnet-4-6")
    assert gpt4 is not None
    assert current is not None
    assert gpt4.deprecated is True  # 2026-10-23 has passed
    assert gpt4.deprecated_on(date(2026, 10, 23)) is True
    assert gpt4.deprecated_on(date(2026, 10, 22)) is False
    assert current.deprecation_date is None
    assert current.deprecated is False
    assert manager().deprecation_warning("gpt-4") is not None


# import cost


def test_importing_models_does_not_import_litellm():
    code = (
        "import sys\n"
        "from aiecs_llm.providers.catalogue import ModelManager\n"
        "from aiecs_llm.config.settings import LLMSettings\n"
        "models = ModelManager(LLMSettings())\n"
        "assert models.providers() == ['openai', 'anthropic', 'google']\n"
        "assert models.default_model('anthropic') == 'claude-sonnet-4-5'\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
