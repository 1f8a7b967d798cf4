"""A local server that speaks the OpenAI, Anthropic and Gemini wire formats, with faults.

Usage::

    with FakeProviderServer() as server:
        server.enqueue(Reply.rate_limited(retry_after="2"), Reply.ok(text="hi"))
        litellm.completion(model="openai/gpt-4o-mini", api_base=server.openai_base, ...)
        assert server.requests[0].provider == "openai"
"""

from .received import RecordedRequest
from .replies import DEFAULT_TEXT, ErrorKind, Outcome, Reply
from .server import FakeProviderServer

__all__ = ["DEFAULT_TEXT", "ErrorKind", "FakeProviderServer", "Outcome", "RecordedRequest", "Reply"]
