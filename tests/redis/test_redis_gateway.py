"""The alternative docs/scaling.md offers to sharing state through Redis: every replica calls
one LiteLLM Proxy (``litellm_proxy/`` models), which keeps the keys, budgets and limits."""

from __future__ import annotations

from aiecs_llm.client.litellm_client import LiteLLMClient
from aiecs_llm.config.settings import LLMSettings
from aiecs_llm.types import LLMMessage


async def test_a_litellm_proxy_model_goes_to_the_gateway_with_the_virtual_key(server):
    gateway = LiteLLMClient(
        "litellm_proxy/gpt-4o-mini",
        api_key="sk-test-virtual-key-000000000",
        base_url=server.openai_base,
        settings=LLMSettings(),
    )
    answer = await gateway.generate_text([LLMMessage(role="user", content="hello")])
    assert answer.content
    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.model == "gpt-4o-mini"
    assert sent.api_key == "sk-test-virtual-key-000000000"
    await gateway.close()
