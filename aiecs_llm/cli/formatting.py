"""How the commands print money, counts and tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

_SIGNIFICANT_DIGITS = 3
_MAX_DECIMALS = 10


def usd(amount: float | None) -> str:
    """``$0.00045``, ``$12.35``, ``$0.15``: at least two decimals and three significant digits
    for small amounts, without trailing zeros beyond the cents; ``unknown`` for None.
    """
    if amount is None:
        return "unknown"
    if amount == 0:
        return "$0.00"
    leading_zeros = -math.floor(math.log10(abs(amount))) - 1
    decimals = min(max(2, leading_zeros + _SIGNIFICANT_DIGITS), _MAX_DECIMALS)
    text = f"{amount:,.{decimals}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"${whole}.{fraction}"


def count(value: int | None) -> str:
    """``128,000``; ``-`` when unknown."""
    return "-" if value is None else f"{value:,}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> str:
    """An aligned plain-text table; the columns in ``right`` are right-aligned (numbers)."""
    widths = [max(len(line[i]) for line in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), *map(line, rows)]) + "\n"


def one_line(text: str, *, limit: int = 400) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, cut at ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
