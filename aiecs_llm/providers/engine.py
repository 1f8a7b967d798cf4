"""The only module that imports LiteLLM.

``import litellm`` costs seconds and ~200 MB, so it happens on first use, not when aiecs_llm is
imported. Loading also fixes LiteLLM's process-wide switches once, so that nothing has to be
changed per call: the bundled cost map instead of a network fetch, and no banners on stdout.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from types import ModuleType
from typing import Any

COST_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"


_background: threading.Thread | None = None
_background_lock = threading.Lock()
_module: ModuleType | None = None
# Held for the whole import: a caller's first call and the background import may both ask for
# LiteLLM at once, and only one of them should import it, collect and freeze.
_import_lock = threading.Lock()


def load_in_background() -> None:
    """Start importing LiteLLM in a thread, once per process (the first client does), so that
    the first call does not import it on the event loop.
    """
    global _background  # noqa: PLW0603 - one import per process
    with _background_lock:
        if _background is None and not loaded():
            _background = threading.Thread(
                target=litellm, name="aiecs-llm: import litellm", daemon=True
            )
            # A fork in the middle of the import (gunicorn --preload, celery prefork) would
            # leave the child a half-initialised litellm module and no thread to finish it.
            os.register_at_fork(before=_finish_background_import)
            _background.start()


def _finish_background_import() -> None:
    if _background is not None:
        _background.join()


def loaded() -> bool:
    """Whether LiteLLM is imported and configured already."""
    return _module is not None


async def load() -> ModuleType:
    """LiteLLM, imported off the event loop when it is not loaded yet: the import takes
    seconds, and every other task of the service would wait for it.
    """
    if loaded():
        return litellm()
    return await asyncio.to_thread(litellm)


def litellm() -> ModuleType:
    """The LiteLLM module, configured for library use."""
    if _module is not None:
        return _module
    with _import_lock:
        return _module or _import()


def _import() -> ModuleType:
    global _module  # noqa: PLW0603 - one import per process
    # LiteLLM reads this at import time; without it the import downloads the price map.
    # A user who set it either way keeps their choice.
    os.environ.setdefault(COST_MAP_ENV, "True")
    import litellm as module

    # LiteLLM prints "Give Feedback / Get Help" banners to stdout on every exception otherwise.
    module.suppress_debug_info = True
    # LiteLLM's import leaves ~370,000 long-lived objects that every full collection walks
    # again: a ~140 ms pause of the event loop each time. Frozen, they leave the collector's
    # generations (a full collection then takes ~1 ms), and the LiteLLM path used ~15% less
    # CPU per call at concurrency 64 (bench/, docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    imported: ModuleType = module
    _module = imported
    return imported


def provider_of(model: str) -> tuple[str, str]:
    """Split a LiteLLM model string into (model name, LiteLLM provider); raises LiteLLM's error
    when no provider can be inferred.
    """
    name, provider, _key, _base = litellm().get_llm_provider(model=model)
    return name, provider


def model_info(model: str, provider: str | None = None) -> dict[str, Any] | None:
    """LiteLLM's map entry for a model (context window, prices, deprecation), or None."""
    try:
        info = litellm().get_model_info(model=model, custom_llm_provider=provider)
    except Exception:  # noqa: BLE001 - LiteLLM raises a bare Exception for unmapped models.
        return None
    return dict(info)


def openai_sdk_client(*, api_key: str | None, base_url: str | None, timeout: float) -> Any:
    """An ``openai.AsyncOpenAI`` owned by one of our clients, with the SDK's retries off.

    Its HTTP client is the one LiteLLM builds for its own OpenAI clients (an aiohttp transport
    under httpx, LiteLLM's TLS settings): measured in bench/, it serves 64 concurrent calls
    about a third faster than the SDK's default pool. Redirects are not followed (a 3xx is an
    error): one to another origin would carry the key there.
    """
    import openai

    litellm()
    from litellm.llms.openai.common_utils import BaseOpenAILLM

    http_client = BaseOpenAILLM.get_async_http_client()
    if http_client is not None:
        http_client.follow_redirects = False
    return openai.AsyncOpenAI(
        api_key=api_key or "not-needed",
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        http_client=http_client,
    )


def http_handler(*, timeout: float | None = None) -> Any:
    """A LiteLLM ``AsyncHTTPHandler`` owned by one of our clients: LiteLLM's TLS settings and
    transport; redirects are not followed (one to another origin would carry the key there).
    """
    litellm()
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    return AsyncHTTPHandler(timeout=timeout, follow_redirects=False)
