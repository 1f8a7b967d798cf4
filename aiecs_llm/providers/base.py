"""The constructor shared by the named provider clients."""

from __future__ import annotations

from typing import Any, ClassVar

from aiecs_llm.litellm_client import LiteLLMClient
from aiecs_llm.provider_spec import ProviderSpec
from aiecs_llm.settings import LLMSettings


class ProviderClient(LiteLLMClient):
    """A client bound to one provider: model names need no prefix, the key comes first."""

    spec: ClassVar[ProviderSpec]

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        model: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        settings: LLMSettings | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            model,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            settings=settings,
            **options,
        )
