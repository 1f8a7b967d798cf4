"""Cost reports over the usage ledger: spend and requests per day, provider, model or tag.

Days follow the timezone asked for, so a team in New York sees its own days. The report renders
as a terminal table, CSV, JSON, or one self-contained HTML file whose chart is hand-written
inline SVG: it opens offline and can be mailed as it is.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.errors import ConfigurationError

__all__ = ["CostReport", "CostRow"]

_DIMENSIONS = ("day", "provider", "model", "tag")
_FIELD = {"day": "period", "provider": "provider", "model": "model", "tag": "tag"}
_METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost")
# Tableau 10: distinguishable, and readable by most colour-blind readers.
_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
            "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse}th,td{padding:.25em .75em;border-bottom:1px solid #ddd}"
    "th{text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tfoot td{font-weight:bold}svg text{font-size:12px}"
)


@dataclass(frozen=True, slots=True)
class CostRow:
    """One group of calls. A dimension the report is not grouped by is None.

    Attributes:
        period: The day, ``YYYY-MM-DD`` in the report's timezone.
        provider: The provider that answered.
        model: The model that answered.
        tag: The value of the grouped tag; None also for calls without it.
        requests: Calls, whatever their outcome.
        errors: Calls that failed (cancelled calls are not errors).
        prompt_tokens: Prompt tokens, unknown counts as 0.
        completion_tokens: Completion tokens, unknown counts as 0.
        cost: USD; calls without a known price count 0.

    """

    period: str | None
    provider: str | None
    model: str | None
    tag: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


@dataclass(frozen=True)
class CostReport:
    """Spend grouped by ``group_by``; build it with ``from_ledger()``.

    Attributes:
        rows: One per group, sorted by the ``group_by`` dimensions in order (None first).
        total_cost: USD over all calls in the report, correctly rounded (``math.fsum``).
        total_requests: Calls in the report.
        group_by: The dimensions, as given to ``from_ledger()``.
        timezone: The IANA zone whose days ``"day"`` groups by.

    """

    rows: list[CostRow]
    total_cost: float
    total_requests: int
    group_by: Sequence[str] = ("day", "provider", "model")
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_by", _check_group_by(self.group_by))

    @classmethod
    def from_ledger(
        cls,
        ledger: UsageLedger,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
        group_by: Sequence[str] = ("day", "provider", "model"),
        timezone: str = "UTC",
    ) -> CostReport:
        """The calls in ``ledger`` started in ``[since, until)`` and carrying ``tags``.

        Args:
            ledger: Where the calls are read from.
            since: First instant included (timezone-aware).
            until: First instant excluded (timezone-aware).
            tags: Only calls carrying all of these tags.
            group_by: Any of ``"day"``, ``"provider"``, ``"model"`` and one ``"tag:<name>"``.
            timezone: IANA name of the zone whose days ``"day"`` groups by.

        Raises:
            ConfigurationError: An unknown grouping or timezone, or a naive bound.

        """
        dimensions = _check_group_by(group_by)
        kinds = {label.partition(":")[0] for label in dimensions}
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ConfigurationError(f"unknown timezone {timezone!r}") from error
        tag_name = next((label[4:] for label in dimensions if label.startswith("tag:")), None)
        records = ledger.rows(since=since, until=until, tags=tags)
        groups: dict[tuple[str | None, ...], list[RequestRecord]] = {}
        for record in records:
            values = {
                "day": record.started_at.astimezone(zone).date().isoformat(),
                "provider": record.provider,
                "model": record.model,
                "tag": record.tags.get(tag_name) if tag_name is not None else None,
            }
            key = tuple(values[kind] if kind in kinds else None for kind in _DIMENSIONS)
            groups.setdefault(key, []).append(record)
        order = [_DIMENSIONS.index(label.partition(":")[0]) for label in dimensions]
        keys = sorted(groups, key=lambda key: [(key[i] is not None, key[i] or "") for i in order])
        rows = [_row(key, groups[key]) for key in keys]
        total = math.fsum(record.cost or 0.0 for record in records)
        return cls(rows, total, len(records), dimensions, timezone)

    def to_table(self) -> str:
        """An aligned plain-text table for a terminal, ending with a TOTAL line."""
        headers, body, total = self._grid()
        widths = [
            max(len(line[i]) for line in (headers, *body, total)) for i in range(len(headers))
        ]
        numeric = len(headers) - len(_METRICS)

        def line(cells: list[str]) -> str:
            return "  ".join(
                cell.ljust(width) if i < numeric else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        rule = "  ".join("-" * width for width in widths)
        return "\n".join([line(headers), rule, *map(line, body), rule, line(total)]) + "\n"

    def to_csv(self) -> str:
        """Every row with every field (empty for None), after a header line."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(field.name for field in dataclasses.fields(CostRow))
        for row in self.rows:
            writer.writerow("" if v is None else v for v in dataclasses.astuple(row))
        return out.getvalue()

    def to_json(self) -> str:
        """``{"rows": [...], "total_cost": ..., "total_requests": ...}``."""
        document = {
            "rows": [dataclasses.asdict(row) for row in self.rows],
            "total_cost": self.total_cost,
            "total_requests": self.total_requests,
        }
        return json.dumps(document, indent=2)

    def to_html(self) -> str:
        """One self-contained HTML page: a stacked bar chart of spend per day by model (inline
        SVG), then the table. Nothing is fetched: no scripts, stylesheets or fonts.
        """
        headers, body, total = self._grid()
        numeric = len(headers) - len(_METRICS)

        def cells(tag: str, values: list[str]) -> str:
            return "".join(
                f"<{tag}{' class=num' if i >= numeric else ''}>{html.escape(v)}</{tag}>"
                for i, v in enumerate(values)
            )

        rows = "".join(f"<tr>{cells('td', values)}</tr>" for values in body)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>LLM cost report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>LLM cost report</h1>\n<p>{self.total_requests} requests, "
            f"{_usd(self.total_cost)} in total; days in {html.escape(self.timezone)}.</p>\n"
            f"{self._chart()}\n<table>\n<thead><tr>{cells('th', headers)}</tr></thead>\n"
            f"<tbody>{rows}</tbody>\n<tfoot><tr>{cells('td', total)}</tr></tfoot>\n"
            "</table>\n</body>\n</html>\n"
        )

    def _grid(self) -> tuple[list[str], list[list[str]], list[str]]:
        labels = list(self.group_by) or ["scope"]  # the TOTAL line needs a label column
        body = [
            [_dimension(row, label) for label in labels]
            + _metrics(row.requests, row.errors, row.prompt_tokens, row.completion_tokens, row.cost)
            for row in self.rows
        ]
        total = _metrics(
            self.total_requests,
            sum(row.errors for row in self.rows),
            sum(row.prompt_tokens for row in self.rows),
            sum(row.completion_tokens for row in self.rows),
            self.total_cost,
        )
        return [*labels, *_METRICS], body, ["TOTAL", *[""] * (len(labels) - 1), *total]

    def _chart(self) -> str:
        spend: dict[str, dict[str, float]] = {}
        for row in self.rows:
            by_model = spend.setdefault(row.period or "all days", {})
            model = row.model or "all models"
            by_model[model] = by_model.get(model, 0.0) + row.cost
        if not spend:
            return '<svg width="480" height="40"><text x="0" y="20">No requests.</text></svg>'
        days = sorted(spend)
        models = sorted({model for by_model in spend.values() for model in by_model})
        colour = {model: _PALETTE[i % len(_PALETTE)] for i, model in enumerate(models)}
        highest = max(sum(by_model.values()) for by_model in spend.values())
        step = _nice_step(highest / 5 if highest > 0 else 0.2)
        ticks = max(math.ceil(highest / step - 1e-9), 1)
        digits = max(0, -math.floor(math.log10(step)))
        left, top, plot_h, slot = 80, 20, 240, max(28, min(80, 640 // len(days)))
        right, bottom, rotate = left + slot * len(days), top + plot_h, len(days) > 8
        width = right + 44 + max(len(model) for model in models) * 7 + 20
        height = max(bottom + (110 if rotate else 60), top + 20 * len(models) + 20)

        def y(value: float) -> float:
            return bottom - value / (step * ticks) * plot_h

        parts = [
            f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            'aria-label="Spend per day by model">'
        ]
        for k in range(ticks + 1):
            at = y(k * step)
            parts.append(
                f'<line x1="{left}" x2="{right}" y1="{at:.2f}" y2="{at:.2f}" stroke="#ddd"/>'
                f'<text x="{left - 6}" y="{at + 4:.2f}" text-anchor="end">'
                f"${k * step:.{digits}f}</text>"
            )
        for i, day in enumerate(days):
            base, x = 0.0, left + i * slot + slot * 0.15
            for model in (model for model in models if model in spend[day]):
                cost = spend[day][model]
                upper = y(base + cost)
                parts.append(
                    f'<rect class="bar" x="{x:.2f}" y="{upper:.2f}" width="{slot * 0.7:.2f}" '
                    f'height="{y(base) - upper:.2f}" fill="{colour[model]}" '
                    f'data-day="{_e(day)}" data-model="{_e(model)}">'
                    f"<title>{_e(day)} {_e(model)}: {_usd(cost)}</title></rect>"
                )
                base += cost
            cx, ly = left + i * slot + slot / 2, bottom + 16
            turn = f' transform="rotate(-45 {cx} {ly})"' if rotate else ""
            anchor = "end" if rotate else "middle"
            parts.append(f'<text x="{cx}" y="{ly}" text-anchor="{anchor}"{turn}>{_e(day)}</text>')
        parts.append(
            f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#333"/>'
            f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#333"/>'
            f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle">'
            f"Day ({_e(self.timezone)})</text>"
            f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
            f'transform="rotate(-90 16 {top + plot_h / 2})">Spend (USD)</text>'
        )
        for i, model in enumerate(reversed(models)):  # listed as stacked, top first
            ly = top + 20 * i
            parts.append(
                f'<rect class="swatch" x="{right + 24}" y="{ly}" width="12" height="12" '
                f'fill="{colour[model]}"/>'
                f'<text x="{right + 42}" y="{ly + 10}">{_e(model)}</text>'
            )
        return "".join([*parts, "</svg>"])


def _check_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    """``group_by`` as a tuple; refuses unknown or repeated dimensions, or more than one tag."""
    labels = (group_by,) if isinstance(group_by, str) else tuple(group_by)
    kinds = ["tag" if label.startswith("tag:") and len(label) > 4 else label for label in labels]
    if any(kind not in _DIMENSIONS for kind in kinds) or len(set(kinds)) != len(kinds):
        raise ConfigurationError(
            f"group_by {list(labels)!r}: use each of 'day', 'provider', 'model' and one "
            "'tag:<name>' at most once"
        )
    return labels


def _row(key: tuple[str | None, ...], records: list[RequestRecord]) -> CostRow:
    period, provider, model, tag = key
    return CostRow(
        period=period,
        provider=provider,
        model=model,
        tag=tag,
        requests=len(records),
        errors=sum(record.outcome == "error" for record in records),
        prompt_tokens=sum(record.prompt_tokens or 0 for record in records),
        completion_tokens=sum(record.completion_tokens or 0 for record in records),
        cost=math.fsum(record.cost or 0.0 for record in records),
    )


def _dimension(row: CostRow, label: str) -> str:
    if label == "scope":
        return "all"
    value: str | None = getattr(row, _FIELD[label.partition(":")[0]])
    return "-" if value is None else value


def _metrics(requests: int, errors: int, prompt: int, completion: int, cost: float) -> list[str]:
    return [str(requests), str(errors), str(prompt), str(completion), _usd(cost)]


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``raw``."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def _usd(cost: float) -> str:
    return f"${cost:.6f}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
