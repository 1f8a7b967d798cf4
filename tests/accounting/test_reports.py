"""CostReport against a ledger whose sums were worked out by hand.

Ten calls on 1-2 March 2025 (UTC), placed around the day boundaries of UTC, New York (UTC-5
then) and Tokyo (UTC+9), plus one call on each side of the queried range. Costs are exact binary
fractions, so the expected sums are exact.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.accounting.reports import CostReport, CostRow
from aiecs_llm.errors import ConfigurationError

SINCE = datetime(2025, 3, 1, tzinfo=UTC)
UNTIL = datetime(2025, 3, 3, tzinfo=UTC)
MINI, FOUR, HAIKU = "gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"

# n, UTC start, provider, model, cost, prompt, completion, outcome, team tag
CALLS = [
    (1, "2025-03-01T03:00:00", "openai", MINI, 0.25, 100, 10, "success", "search"),
    (2, "2025-03-01T10:00:00", "openai", MINI, 0.125, 200, 20, "success", "search"),
    (3, "2025-03-01T16:00:00", "anthropic", HAIKU, 0.5, 300, 30, "success", "ads"),
    (4, "2025-03-01T23:30:00", "openai", MINI, 0.0625, 50, 5, "success", "ads"),
    (5, "2025-03-02T02:00:00", "anthropic", HAIKU, 1.0, 400, 40, "success", "search"),
    (6, "2025-03-02T04:59:00", "openai", MINI, None, None, None, "error", "search"),
    (7, "2025-03-02T05:00:00", "openai", FOUR, 2.0, 1000, 100, "success", None),
    (8, "2025-03-02T14:59:00", "anthropic", HAIKU, None, None, None, "cancelled", "ads"),
    (9, "2025-03-02T15:00:00", "openai", FOUR, 0.5, 500, 50, "success", "search"),
    (10, "2025-03-02T23:59:59.999999", "anthropic", HAIKU, 0.25, 20, 2, "success", "ads"),
    # Outside [SINCE, UNTIL): one microsecond before, and exactly at the end.
    (11, "2025-02-28T23:59:59.999999", "openai", FOUR, 8.0, 1, 1, "success", "ads"),
    (12, "2025-03-03T00:00:00", "openai", FOUR, 16.0, 1, 1, "success", "ads"),
]


def record(n, at, provider, model, cost, prompt, completion, outcome, team) -> RequestRecord:
    return RequestRecord(
        id=f"call-{n}",
        started_at=datetime.fromisoformat(at).replace(tzinfo=UTC),
        provider=provider,
        model=model,
        cost=cost,
        prompt_tokens=prompt,
        completion_tokens=completion,
        outcome=outcome,
        tags={"team": team} if team else {},
    )


@pytest.fixture
def ledger():
    with UsageLedger() as opened:
        for call in CALLS:
            opened.record(record(*call))
        yield opened


def report(ledger, **options) -> CostReport:
    return CostReport.from_ledger(ledger, since=SINCE, until=UNTIL, **options)


def row(period, provider, model, tag, requests, errors, prompt, completion, cost) -> CostRow:
    return CostRow(period, provider, model, tag, requests, errors, prompt, completion, cost)


def test_default_grouping_by_utc_day_provider_and_model(ledger):
    result = report(ledger)
    assert result.rows == [
        row("2025-03-01", "anthropic", HAIKU, None, 1, 0, 300, 30, 0.5),
        row("2025-03-01", "openai", MINI, None, 3, 0, 350, 35, 0.4375),
        row("2025-03-02", "anthropic", HAIKU, None, 3, 0, 420, 42, 1.25),
        row("2025-03-02", "openai", FOUR, None, 2, 0, 1500, 150, 2.5),
        row("2025-03-02", "openai", MINI, None, 1, 1, 0, 0, 0.0),
    ]
    assert result.total_cost == 4.6875
    assert result.total_requests == 10


def test_days_follow_new_york(ledger):
    result = report(ledger, group_by=("day", "model"), timezone="America/New_York")
    assert result.rows == [
        row("2025-02-28", None, MINI, None, 1, 0, 100, 10, 0.25),
        row("2025-03-01", None, HAIKU, None, 2, 0, 700, 70, 1.5),
        row("2025-03-01", None, MINI, None, 3, 1, 250, 25, 0.1875),
        row("2025-03-02", None, HAIKU, None, 2, 0, 20, 2, 0.25),
        row("2025-03-02", None, FOUR, None, 2, 0, 1500, 150, 2.5),
    ]
    assert result.total_cost == 4.6875


def test_days_follow_tokyo(ledger):
    result = report(ledger, group_by=["day"], timezone="Asia/Tokyo")
    assert result.rows == [
        row("2025-03-01", None, None, None, 2, 0, 300, 30, 0.375),
        row("2025-03-02", None, None, None, 6, 1, 1750, 175, 3.5625),
        row("2025-03-03", None, None, None, 2, 0, 520, 52, 0.75),
    ]


def test_a_day_with_a_dst_change_has_23_hours():
    # New York moves to UTC-4 at 02:00 on 9 March 2025: that day runs 05:00Z to 04:00Z.
    starts = [
        "2025-03-09T04:59:59",
        "2025-03-09T05:00:00",
        "2025-03-10T03:59:59",
        "2025-03-10T04:00:00",
    ]
    with UsageLedger() as ledger:
        for n, at in enumerate(starts):
            ledger.record(record(n, at, "openai", MINI, 0.5, 1, 1, "success", None))
        result = CostReport.from_ledger(ledger, group_by=("day",), timezone="America/New_York")
    assert [(r.period, r.requests) for r in result.rows] == [
        ("2025-03-08", 1),
        ("2025-03-09", 2),
        ("2025-03-10", 1),
    ]


def test_group_by_tag_puts_untagged_calls_first(ledger):
    result = report(ledger, group_by=("tag:team",))
    assert result.rows == [
        row(None, None, None, None, 1, 0, 1000, 100, 2.0),
        row(None, None, None, "ads", 4, 0, 370, 37, 0.8125),
        row(None, None, None, "search", 5, 1, 1200, 120, 1.875),
    ]


def test_rows_are_ordered_as_grouped(ledger):
    result = report(ledger, group_by=("model", "day"))
    assert [(r.model, r.period) for r in result.rows] == [
        (HAIKU, "2025-03-01"),
        (HAIKU, "2025-03-02"),
        (FOUR, "2025-03-02"),
        (MINI, "2025-03-01"),
        (MINI, "2025-03-02"),
    ]


def test_tag_filter_and_no_range(ledger):
    result = CostReport.from_ledger(ledger, tags={"team": "ads"}, group_by=("provider",))
    assert result.rows == [
        row(None, "anthropic", None, None, 3, 0, 320, 32, 0.75),
        row(None, "openai", None, None, 3, 0, 52, 7, 24.0625),
    ]
    assert result.total_requests == 6


def test_table(ledger):
    assert report(ledger, group_by=("tag:team",)).to_table() == (
        "tag:team  requests  errors  prompt_tokens  completion_tokens       cost\n"
        "--------  --------  ------  -------------  -----------------  ---------\n"
        "-                1       0           1000                100  $2.000000\n"
        "ads              4       0            370                 37  $0.812500\n"
        "search           5       1           1200                120  $1.875000\n"
        "--------  --------  ------  -------------  -----------------  ---------\n"
        "TOTAL           10       1           2570                257  $4.687500\n"
    )
    lines = report(ledger).to_table().splitlines()
    assert lines[-1].split() == ["TOTAL", "10", "1", "2570", "257", "$4.687500"]
    assert len({len(line) for line in lines[:2]}) == 1
    assert CostReport.from_ledger(ledger, group_by=()).to_table().splitlines()[2].startswith("all")


def test_csv_parses_back_to_the_same_numbers(ledger):
    result = report(ledger, timezone="America/New_York")
    parsed = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert [
        CostRow(
            period=line["period"] or None,
            provider=line["provider"] or None,
            model=line["model"] or None,
            tag=line["tag"] or None,
            requests=int(line["requests"]),
            errors=int(line["errors"]),
            prompt_tokens=int(line["prompt_tokens"]),
            completion_tokens=int(line["completion_tokens"]),
            cost=float(line["cost"]),
        )
        for line in parsed
    ] == result.rows


def test_json_loads(ledger):
    result = report(ledger, group_by=("day", "tag:team"))
    document = json.loads(result.to_json())
    assert document["total_cost"] == 4.6875
    assert document["total_requests"] == 10
    assert document["rows"] == [dataclasses.asdict(r) for r in result.rows]


def svg_of(page: str) -> ET.Element:
    # The chart must be well-formed XML on its own (it is also parsed as such here).
    return ET.fromstring(re.search(r"<svg.*?</svg>", page, re.DOTALL).group(0))


def test_html_is_self_contained_with_one_bar_segment_per_day_and_model(ledger, tmp_path):
    result = report(ledger, group_by=("day", "provider", "model"), timezone="America/New_York")
    page = result.to_html()
    (tmp_path / "report.html").write_text(page, encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page
    assert "https://" not in page
    assert not re.search(r"<(script|link|img|iframe)\b|@import|url\(", page)
    svg = svg_of(page)
    bars = {(r.get("data-day"), r.get("data-model")): r for r in svg.iter("rect")}
    assert len([r for r in svg.iter("rect") if r.get("class") == "bar"]) == 5
    assert {key for key, r in bars.items() if r.get("class") == "bar"} == {
        ("2025-02-28", MINI),
        ("2025-03-01", HAIKU),
        ("2025-03-01", MINI),
        ("2025-03-02", HAIKU),
        ("2025-03-02", FOUR),
    }
    # Heights are proportional to spend: $2.50 against $0.25.
    high = float(bars[("2025-03-02", FOUR)].get("height"))
    low = float(bars[("2025-02-28", MINI)].get("height"))
    assert high / low == pytest.approx(10.0)
    texts = [t.text for t in svg.iter("text")]
    assert "Spend (USD)" in texts
    assert "Day (America/New_York)" in texts
    assert {MINI, FOUR, HAIKU} <= set(texts)  # the legend
    assert len([r for r in svg.iter("rect") if r.get("class") == "swatch"]) == 3
    assert "<td>TOTAL</td>" in page
    assert "$4.687500" in page


def test_html_escapes_names_and_survives_many_days_and_no_calls():
    with UsageLedger() as ledger:
        empty = CostReport.from_ledger(ledger).to_html()
        assert svg_of(empty).find("rect") is None
        for day in range(1, 21):
            ledger.record(
                RequestRecord(
                    started_at=datetime(2025, 3, day, tzinfo=UTC),
                    provider="p",
                    model='<b>"x" & y',
                    cost=0.0001 * day,
                )
            )
        page = CostReport.from_ledger(ledger).to_html()
    assert "<b>" not in page
    svg = svg_of(page)
    assert len([r for r in svg.iter("rect") if r.get("class") == "bar"]) == 20
    assert '<b>"x" & y' in [t.text for t in svg.iter("text")]


@pytest.mark.parametrize(
    "group_by", [("week",), ("day", "day"), ("tag:",), ("tag:a", "tag:b"), ("Model",)]
)
def test_bad_groupings_are_refused(ledger, group_by):
    with pytest.raises(ConfigurationError, match="group_by"):
        CostReport.from_ledger(ledger, group_by=group_by)


def test_an_unknown_timezone_is_refused(ledger):
    with pytest.raises(ConfigurationError, match="Mars/Olympus"):
        CostReport.from_ledger(ledger, timezone="Mars/Olympus")
