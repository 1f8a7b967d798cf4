"""Reading the usage ledger: where it is and whose days count, for ``aiecs-llm usage`` and the
operations server.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from aiecs_llm.errors import ConfigurationError

NOT_CONFIGURED = "no usage ledger configured: set LLM_USAGE_DB or [ledger] path in the config file"


def existing_ledger(path: str | None, *, hint: str = "") -> Path:
    """The ledger file at ``path``, which must exist: reading must not create an empty one
    where a mistyped path points.

    Args:
        path: The configured path, or None when none is configured.
        hint: Appended to the message when no path is configured (another way to give one).

    Raises:
        ConfigurationError: ``path`` is None, or no file exists there.

    """
    if path is None:
        raise ConfigurationError(NOT_CONFIGURED + hint)
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigurationError(
            f"no usage ledger at {file}: nothing has been recorded there yet, or the path is wrong"
        )
    return file


def report_zone(name: str) -> ZoneInfo:
    """The IANA timezone whose days a report counts.

    Raises:
        ConfigurationError: No such timezone.

    """
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        raise ConfigurationError(f"unknown timezone {name!r}") from None
