"""What the direct transport's wire formats share: reading a body, and LiteLLM's exceptions
for a call's failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator, Mapping

import aiohttp

from aiecs_llm.providers import engine as _litellm

_GZIP_MAGIC = b"\x1f\x8b"


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, decompressed."""
    body = await response.read()
    # aiohttp decompresses what it receives, but recordings replayed through vcrpy's aiohttp
    # stub (aiecs_llm.testing, the conformance suite) hand the body over as recorded.
    if body[:2] == _GZIP_MAGIC and response.headers.get("Content-Encoding") == "gzip":
        return gzip.decompress(body)
    return body


class Failures:
    """LiteLLM's exceptions for one call's failures (see ``_litellm.provider_error``)."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model

    def http(self, status: int, text: str, headers: Mapping[str, str]) -> BaseException:
        """For an HTTP error answer."""
        return _litellm.provider_error(
            provider=self.provider, model=self.model, status=status, text=text, headers=headers
        )

    def timeout(self, message: str) -> BaseException:
        """For an answer that did not come in time."""
        return _litellm.timeout_error(provider=self.provider, model=self.model, message=message)

    def mapped(self, exc: BaseException) -> BaseException:
        """For what a parser raised, through LiteLLM's exception mapping."""
        return _litellm.mapped_error(exc, provider=self.provider, model=self.model)

    def connection(self, exc: BaseException) -> BaseException:
        """For a request that got no (whole) answer."""
        message = f"{type(exc).__name__}: {exc}"
        return _litellm.connection_error(provider=self.provider, model=self.model, message=message)


@contextlib.asynccontextmanager
async def request_failures(
    session: aiohttp.ClientSession, fail: Failures, timeout: float
) -> AsyncIterator[None]:
    """The time limit of a request's answer (for a stream, its start: the client's idle timeout
    then watches every chunk), and its transport failures raised as LiteLLM's exceptions.
    """
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError as exc:
        raise fail.timeout(f"no answer within {timeout:.3g}s") from exc
    except aiohttp.ClientError as exc:
        raise fail.connection(exc) from exc
    except (RuntimeError, AssertionError) as exc:
        # Closing the client with this call in flight: aiohttp then fails with these rather
        # than a ClientError (its connector is gone). Anything else is a bug: re-raised.
        if not session.closed:
            raise
        raise fail.connection(exc) from exc
