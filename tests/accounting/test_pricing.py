import pytest
from structlog.testing import capture_logs

from aiecs_llm import OpenAIClient
from aiecs_llm.accounting import pricing
from aiecs_llm.config.settings import TokenPrice
from aiecs_llm.providers import engine as _litellm

litellm = _litellm.litellm()


def usage(prompt, completion, cached=0, reasoning=0):
    return litellm.Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details={"cached_tokens": cached},
        completion_tokens_details={"reasoning_tokens": reasoning},
    )


def test_spec_estimate_cost_semantics():
    client = OpenAIClient()
    costs = {"gpt-4": {"input": 0.03, "output": 0.06}}
    assert client._estimate_cost("gpt-4", 1000, 500, costs) == pytest.approx(0.06)
    assert client._estimate_cost("unknown", 1000, 500, costs) == 0.0


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("abc", 1), ("abcd", 1), ("abcde", 2)])
def test_rough_estimate_is_four_characters_a_token(text, tokens):
    assert OpenAIClient()._count_tokens_estimate(text) == tokens


def test_accurate_count_uses_the_model_tokenizer_offline():
    # tiktoken's encodings ship with LiteLLM; sockets beyond loopback are blocked here.
    count = OpenAIClient()._count_tokens_accurate("Hello, world! How are you today?", "gpt-4o")
    assert 5 <= count <= 12
    assert count != OpenAIClient()._count_tokens_estimate("Hello, world! How are you today?")


@pytest.mark.parametrize(
    ("model", "provider", "prompt", "completion", "cached"),
    [
        ("gpt-4o-mini", "openai", 1200, 300, 0),
        ("gpt-4o-mini", "openai", 1200, 300, 1024),
        ("claude-sonnet-4-5", "anthropic", 5000, 800, 0),
        ("gemini-2.5-flash", "gemini", 900, 50, 0),
    ],
)
def test_cost_equals_litellms_own_figure(model, provider, prompt, completion, cached):
    the_usage = usage(prompt, completion, cached=cached)
    ours = pricing.usage_cost(usage=the_usage, models=[model], provider=provider, overrides={})
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=model, custom_llm_provider=provider, usage_object=the_usage
    )
    assert ours == pytest.approx(prompt_cost + completion_cost, rel=1e-12)
    assert ours > 0


def test_cached_tokens_are_cheaper_where_the_map_says_so():
    plain = pricing.usage_cost(
        usage=usage(2000, 10), models=["gpt-4o-mini"], provider="openai", overrides={}
    )
    cached = pricing.usage_cost(
        usage=usage(2000, 10, cached=2000), models=["gpt-4o-mini"], provider="openai", overrides={}
    )
    assert cached < plain


def test_override_per_1k_wins():
    overrides = {"gpt-4o-mini": TokenPrice(input=1.0, output=2.0)}
    cost = pricing.usage_cost(
        usage=usage(1000, 500),
        models=["gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"],
        provider="openai",
        overrides=overrides,
    )
    assert cost == pytest.approx(1.0 + 1.0)


def test_unknown_model_costs_none_and_warns_once():
    pricing._warned_unpriced.discard("my-local-model")
    with capture_logs() as events:
        for _ in range(3):
            cost = pricing.usage_cost(
                usage=usage(10, 10), models=["my-local-model"], provider="openai", overrides={}
            )
            assert cost is None
    warnings = [event for event in events if event["event"] == "llm.cost.unknown_model"]
    assert len(warnings) == 1
    assert warnings[0]["model"] == "my-local-model"
