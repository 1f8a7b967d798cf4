"""Keeping API keys out of everything the library prints, raises or records.

Keys are known to the client that holds them, so the reliable defence is to replace those exact
values (and any long slice of them, since providers echo keys partially masked) wherever text
leaves the library. Patterns of well-known key formats catch keys the client was never told about,
e.g. one LiteLLM read from the environment by itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import cache
from typing import SupportsIndex

from typing_extensions import override

REDACTED = "***"

# Long enough that ordinary words never match, short enough to catch a partially echoed key.
_MIN_SLICE = 8

_KEY_PATTERNS = re.compile(
    r"sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic
    r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"  # OpenAI
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google
    r"|(?<=[?&]key=)[^&\s'\"]+"  # a key in a query string (Gemini's ?key=)
)


class Secret(str):
    """A key as the library carries it to LiteLLM: the value itself wherever it is used as a
    string, ``'***'`` wherever it is shown. Tracebacks rendered with their locals (rich,
    structlog's ``dict_tracebacks``) show the frames' variables by ``repr``, and a slice of it
    (which renderers take of long strings) is a ``Secret`` too.
    """

    __slots__ = ()

    @override
    def __repr__(self) -> str:
        return repr(REDACTED)

    @override
    def __getitem__(self, index: SupportsIndex | slice) -> Secret:
        return Secret(super().__getitem__(index))


@cache
def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible label for a key, safe to log (e.g. ``sha256:1a2b3c4d``)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with the given secrets, any 8+ character slice of them, and key-shaped
    strings replaced by ``***``.
    """
    for secret in secrets:
        if not secret:
            continue
        if secret in text:
            text = text.replace(secret, REDACTED)
        if len(secret) > _MIN_SLICE:
            text = _redact_slices(text, secret)
    return _KEY_PATTERNS.sub(REDACTED, text)


def _redact_slices(text: str, secret: str) -> str:
    # Slide a window over the secret; any window found in the text is grown to the longest
    # shared run before replacing, so "sk-abc...xyz" partially echoed as "abc...x" disappears.
    for start in range(len(secret) - _MIN_SLICE + 1):
        window = secret[start : start + _MIN_SLICE]
        while window in text:
            end = start + _MIN_SLICE
            while end < len(secret) and secret[start : end + 1] in text:
                end += 1
            text = text.replace(secret[start:end], REDACTED)
    return text
