"""Checks on call arguments, made before any HTTP is sent so that a bad value fails fast with a
message naming it, instead of deep inside LiteLLM or as a provider's 400 that costs a round trip.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence

from aiecs_llm.accounting import pricing
from aiecs_llm.errors import (
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    LLMClientError,
)
from aiecs_llm.providers import engine as _litellm
from aiecs_llm.types import LLMMessage


def check_messages(messages: Sequence[LLMMessage]) -> tuple[LLMMessage, ...]:
    """The conversation as a tuple of validated messages (dicts are accepted and validated)."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidRequestError("messages must be a list of LLMMessage")
    if not messages:
        raise InvalidRequestError("messages must not be empty")
    conversation = []
    for index, message in enumerate(messages):
        if isinstance(message, LLMMessage):
            conversation.append(message)
        elif isinstance(message, Mapping):
            # Checked here: LLMMessage(**message) would fail on these with a bare TypeError.
            if set(message) != {"role", "content"}:
                keys = ", ".join(sorted(repr(key) for key in message))
                raise InvalidRequestError(
                    f"messages[{index}] must have the keys 'role' and 'content' only, "
                    f"got {keys or 'none'}"
                )
            conversation.append(LLMMessage(message["role"], message["content"]))
        else:
            raise InvalidRequestError(
                f"messages[{index}] must be an LLMMessage, not {type(message).__name__}"
            )
    return tuple(conversation)


# Gemini's model name is pasted into the URL path, where these would end the path.
# LiteLLM providers whose URL path carries the model name (``models/{name}:generateContent``,
# ``deployments/{name}/...``).
_NAME_IN_URL_PATH = frozenset({"gemini", "vertex_ai", "vertex_ai_beta", "azure"})
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]*")
_NOT_A_NAME = frozenset({"", ".", ".."})
_PATH_MOVING = frozenset("%\\")


def check_model_name(model: str) -> str:
    """A model string that can be sent: no control characters (nothing by that name exists,
    and in a URL they fail deep inside the HTTP client), and nothing that could move the request
    to another path of the provider's API with the key attached (``../../v1beta/files``,
    ``%2e%2e``): no empty, ``.`` or ``..`` segment, no percent-encoding, backslash or space; and
    where the provider puts the name in the URL path (Gemini, Vertex AI, Azure), exactly one
    segment of safe characters.
    """
    if any(unicodedata.category(char) == "Cc" for char in model):
        raise InvalidRequestError(f"model {model!r} contains a control character")
    prefix, _, name = model.partition("/")
    segments = model.split("/")
    if (
        any(segment in _NOT_A_NAME for segment in segments)
        or _PATH_MOVING.intersection(model)
        or any(char.isspace() for char in model)
    ):
        raise InvalidRequestError(
            f"model {model!r} is not a model name: it has an empty, '.' or '..' part, a '%', "
            "a backslash or a space"
        )
    if prefix in _NAME_IN_URL_PATH and not _SAFE_SEGMENT.fullmatch(name):
        raise InvalidRequestError(
            f"model {model!r} is not a model name: {prefix} puts it in the URL path, so it must "
            "be one segment of letters, digits and . _ - : @ +"
        )
    return model


# What the client sets itself on every request; a caller's value would silently take over
# (stream=True on generate_text sends a streamed request it cannot read, a key or endpoint
# would bypass rotation and redaction, num_retries would stack a second retry layer).
RESERVED_PARAMETERS = frozenset(
    {
        "api_base",
        "api_key",
        "base_url",
        "client",
        "custom_llm_provider",
        "max_retries",
        "messages",
        "model",
        "num_retries",
        "stream",
        "stream_options",
    }
)


def check_extra_parameters(
    params: Mapping[str, object],
    ours: frozenset[str] = frozenset(),
    error: type[LLMClientError] = InvalidRequestError,
) -> None:
    """Refuse further LiteLLM parameters that would override what the client sets itself
    (``ours`` are the client's own keyword arguments, which are allowed).
    """
    reserved = sorted((RESERVED_PARAMETERS - ours).intersection(params))
    if reserved:
        raise error(
            f"{', '.join(reserved)} cannot be passed: the client sets "
            f"{'it' if len(reserved) == 1 else 'them'} itself"
        )


def check_context_window(
    chain: Sequence[tuple[str, int | None]], messages: Sequence[LLMMessage], estimate: int
) -> None:
    """Refuse, before the upload, a conversation that no model of the chain can read.

    ``chain`` pairs each model with its context window (None: unknown, and then nothing is
    refused). The four-characters ``estimate`` only says when counting is worth it; the model's
    tokenizer decides, since text such as long runs of spaces packs far more into a token.
    """
    known = [(model, window) for model, window in chain if window is not None]
    if not known or len(known) < len(chain) or estimate <= max(w for _, w in known):
        return
    dumped = [message.model_dump() for message in messages]
    counted = []
    tokens = estimate
    for model, window in known:
        tokens = pricing.count_tokens(model, messages=dumped)
        if tokens <= window:
            return
        counted.append(f"{model} reads {window:,}")
    raise ContextWindowExceededError(
        f"the conversation is about {tokens:,} tokens, more than any model of the chain can "
        f"read ({'; '.join(counted)}); nothing was sent",
        model=chain[0][0],
    )


def check_temperature(value: float) -> float:
    """A sampling temperature in the range every provider accepts."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise InvalidRequestError(f"temperature must be a number from 0 to 2, got {value!r}")
    return float(value)


def check_max_tokens(value: int, model: str, provider: str) -> int:
    """A positive output limit, no larger than LiteLLM's map says the model can produce."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequestError(f"max_tokens must be a whole number > 0, got {value!r}")
    info = _litellm.model_info(model, provider) or {}
    limit = info.get("max_output_tokens") or info.get("max_tokens")
    if isinstance(limit, int) and value > limit:
        raise InvalidRequestError(
            f"max_tokens={value} is more than {model} can produce ({limit})",
            model=model,
        )
    return value


def check_seconds(value: float, name: str) -> float:
    """A finite, positive duration in seconds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)
