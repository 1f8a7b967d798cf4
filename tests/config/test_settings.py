import pytest

from aiecs_llm import (
    AnthropicClient,
    ConfigurationError,
    GoogleAIClient,
    LLMMessage,
    LLMSettings,
    OpenAIClient,
)
from tests.fake_provider import FakeProviderServer

CONFIG = """
[providers.openai]
api_key = "sk-from-file-1111111111111111"
base_url = "http://127.0.0.1:9/v1"
models = ["gpt-4o-mini", "gpt-4o"]

[defaults]
model = "openai/gpt-4o-mini"
temperature = 0.2
max_tokens = 256

[costs."gpt-4"]
input = 0.03
output = 0.06
"""


def write_config(tmp_path, text=CONFIG):
    path = tmp_path / "llm.toml"
    path.write_text(text)
    return path


def test_environment_names_from_the_spec(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8/v1")
    monkeypatch.setenv("LLM_DEFAULT_MODEL", "anthropic/claude-sonnet-4-5")
    monkeypatch.setenv("LLM_DEFAULT_TEMPERATURE", "0.3")
    monkeypatch.setenv("LLM_MAX_TOKENS", "1000")
    monkeypatch.setenv("LLM_TIMEOUT", "30")
    settings = LLMSettings.load()
    assert settings.provider("openai").api_key.get_secret_value().startswith("sk-test-openai")
    assert settings.provider("openai").base_url == "http://127.0.0.1:8/v1"
    assert settings.defaults.model == "anthropic/claude-sonnet-4-5"
    assert settings.defaults.temperature == 0.3
    assert settings.defaults.max_tokens == 1000
    assert settings.defaults.timeout == 30.0


def test_gemini_api_key_is_accepted_as_well(monkeypatch):
    monkeypatch.delenv("GOOGLE_AI_API_KEY")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-123456789")
    assert LLMSettings.load().provider("google").api_key.get_secret_value() == (
        "gemini-key-123456789"
    )


def test_google_ai_api_key_wins_over_gemini_api_key(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "the-other-one-1234")
    key = LLMSettings.load().provider("google").api_key.get_secret_value()
    assert key.startswith("test-google-key")


def test_file_beats_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_DEFAULT_TEMPERATURE", "0.9")
    settings = LLMSettings.load(write_config(tmp_path))
    assert settings.defaults.temperature == 0.2
    assert settings.provider("openai").api_key.get_secret_value() == "sk-from-file-1111111111111111"
    assert settings.provider("openai").models == ["gpt-4o-mini", "gpt-4o"]
    assert settings.costs["gpt-4"].input == 0.03
    # Sections the file does not mention still come from the environment.
    assert settings.provider("anthropic").api_key is not None


def test_config_file_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_CONFIG_FILE", str(write_config(tmp_path)))
    assert LLMSettings.load().defaults.max_tokens == 256


async def test_explicit_arguments_beat_the_file(tmp_path):
    settings = LLMSettings.load(write_config(tmp_path))
    async with FakeProviderServer() as server:
        client = OpenAIClient(
            "sk-explicit-2222222222222", server.openai_base, timeout=5, settings=settings
        )
        async with client:
            await client.generate_text([LLMMessage("user", "hi")])
    assert client.timeout == 5
    (request,) = server.requests
    assert request.headers["authorization"] == "Bearer sk-explicit-2222222222222"
    assert request.json["temperature"] == 0.2  # from the file, not the environment
    assert request.json["model"] == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("LLM_TIMEOUT", "soon", "LLM_TIMEOUT"),
        ("LLM_MAX_TOKENS", "many", "LLM_MAX_TOKENS"),
        ("LLM_DEFAULT_TEMPERATURE", "hot", "LLM_DEFAULT_TEMPERATURE"),
        ("LLM_DEFAULT_TEMPERATURE", "5", "temperature"),
        ("LLM_TIMEOUT", "-1", "timeout"),
    ],
)
def test_bad_environment_values_name_the_variable(monkeypatch, name, value, field):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=field):
        LLMSettings.load()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults\nmodel=", "not valid TOML"),
        ("[defaults]\ntemperature = 'hot'", "defaults.temperature"),
        ("[defaults]\ncolour = 'blue'", "defaults.colour"),
        ("[costs.gpt-4]\ninput = -1\noutput = 1", "costs.gpt-4.input"),
    ],
)
def test_bad_config_files_are_configuration_errors(tmp_path, text, message):
    with pytest.raises(ConfigurationError, match=message):
        LLMSettings.load(write_config(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigurationError, match="not found"):
        LLMSettings.load(tmp_path / "absent.toml")


def test_validation_errors_never_echo_values(tmp_path):
    secret = "sk-live-should-not-appear-anywhere"
    with pytest.raises(ConfigurationError) as caught:
        LLMSettings.load(
            write_config(tmp_path, f"[providers.openai]\napi_key = {{x = '{secret}'}}")
        )
    assert secret not in str(caught.value)


def test_keys_never_show_in_reprs():
    settings = LLMSettings.load()
    client = AnthropicClient(settings=settings)
    for text in (repr(settings), str(settings), repr(client), str(settings.model_dump())):
        assert "sk-ant-test" not in text


@pytest.mark.parametrize(
    ("client_class", "env", "argument"),
    [
        (OpenAIClient, "OPENAI_API_KEY", "OpenAIClient(api_key=...)"),
        (AnthropicClient, "ANTHROPIC_API_KEY", "AnthropicClient(api_key=...)"),
        (GoogleAIClient, "GOOGLE_AI_API_KEY", "GoogleAIClient(api_key=...)"),
    ],
)
def test_missing_key_names_variable_and_argument(monkeypatch, client_class, env, argument):
    monkeypatch.delenv(env)
    with pytest.raises(ConfigurationError) as caught:
        client_class()
    assert env in str(caught.value)
    assert argument in str(caught.value)


async def test_a_local_base_url_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    async with FakeProviderServer() as server, OpenAIClient(base_url=server.openai_base) as client:
        response = await client.generate_text([LLMMessage("user", "hi")])
    assert response.content
    assert "sk-test" not in server.requests[0].headers["authorization"]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_bad_timeouts_are_rejected(timeout):
    with pytest.raises(ConfigurationError, match="timeout"):
        OpenAIClient(timeout=timeout)


def test_bad_max_retries_are_rejected():
    with pytest.raises(ConfigurationError, match="max_retries"):
        OpenAIClient(max_retries=-1)
