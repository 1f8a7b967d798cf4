"""``aiecs-llm usage``: a cost report from the usage ledger."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aiecs_llm.cli.command import Command
from aiecs_llm.cli.formatting import usd
from aiecs_llm.cli.ledger_access import existing_ledger, report_zone
from aiecs_llm.errors import ConfigurationError

FORMATS = ("table", "csv", "json", "html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``usage``."""
    parser.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day included")
    parser.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day included")
    parser.add_argument(
        "--group-by",
        default="day,provider,model",
        metavar="DIMENSIONS",
        help="comma-separated: day, provider, model, tag:<name> (default: %(default)s)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    parser.add_argument(
        "--db", metavar="PATH", help="ledger file (default: LLM_USAGE_DB, or [ledger] path)"
    )
    parser.add_argument(
        "--timezone", metavar="ZONE", help="IANA zone of the days (default: [budgets] timezone)"
    )


def run(args: argparse.Namespace) -> int:
    """Print (or write) the report; the days are whole days in the report's timezone."""
    from aiecs_llm.accounting.ledger import UsageLedger
    from aiecs_llm.accounting.reports import CostReport
    from aiecs_llm.config.settings import LLMSettings

    settings = LLMSettings.load()
    ledger_path = existing_ledger(args.db or settings.ledger.path, hint=", or pass --db PATH")
    timezone: str = args.timezone or settings.budgets.timezone
    zone = report_zone(timezone)
    since = _start_of(args.since, zone)
    until = _start_of(args.until + timedelta(days=1), zone) if args.until else None
    if since is not None and until is not None and until <= since:
        raise ConfigurationError("--until is before --since")
    group_by = [part.strip() for part in args.group_by.split(",") if part.strip()]
    with UsageLedger(ledger_path) as ledger:
        report = CostReport.from_ledger(
            ledger, since=since, until=until, group_by=group_by, timezone=timezone
        )
    rendered = {
        "table": report.to_table,
        "csv": report.to_csv,
        "json": report.to_json,
        "html": report.to_html,
    }[args.format]()
    if args.output is None:
        sys.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")
        return 0
    _write(Path(args.output), rendered)
    sys.stderr.write(
        f"wrote {args.output}: {report.total_requests} requests, {usd(report.total_cost)}\n"
    )
    return 0


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2025-01-31") from None


def _start_of(day: date | None, zone: ZoneInfo) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=zone)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot write {path}: {error.strerror}") from None


COMMAND = Command(
    summary="report spend and requests from the usage ledger",
    description=(
        "Report spend and requests from the usage ledger, grouped by day, provider, model or "
        "a tag, as a table, CSV, JSON or a self-contained HTML page. Days are whole days in "
        "the report's timezone; --since and --until are both included."
    ),
    examples=(
        "aiecs-llm usage --since 2025-06-01",
        "aiecs-llm usage --group-by day,tag:service --format csv -o spend.csv",
        "aiecs-llm usage --db /var/lib/aiecs/llm-usage.db --format html -o report.html",
    ),
    add_arguments=add_arguments,
    run=run,
)
