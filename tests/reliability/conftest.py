"""Fixtures of the reliability suite, and its figures: printed at the end of every run that
includes it, written to docs/reliability.md when the whole suite ran and passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from tests.reliability.chaos_server import ChaosServer
from tests.reliability.figures import Figures, write_report

HERE = Path(__file__).resolve().parent
FIGURES = Figures()
_RUN: dict[str, object] = {
    "started": time.monotonic(),
    "collected": set(),
    "deselected": False,
    "failed": 0,
    "ran": set(),
}


def _ours(nodeid: str) -> bool:
    return nodeid.replace("\\", "/").startswith("tests/reliability/")


@pytest.fixture(scope="session")
def figures() -> Figures:
    """The run's figures; tests add what they did."""
    return FIGURES


@pytest.fixture
async def chaos() -> AsyncIterator[ChaosServer]:
    """The extended fake provider server, in this process, for one test."""
    async with ChaosServer() as running:
        yield running


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """Drop the library's per-call info events (a load test would print thousands)."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**previous)


def pytest_sessionstart(session: pytest.Session) -> None:
    _RUN["started"] = time.monotonic()


def pytest_collection_finish(session: pytest.Session) -> None:
    _RUN["collected"] = {item.nodeid for item in session.items if _ours(item.nodeid)}


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(_ours(item.nodeid) for item in items):
        _RUN["deselected"] = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _ours(report.nodeid):
        return
    ran = _RUN["ran"]
    assert isinstance(ran, set)
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        ran.add(report.nodeid)
    if report.when == "call" and hasattr(report, "wasxfail") and report.outcome == "skipped":
        FIGURES.known_bugs[report.nodeid] = str(report.wasxfail)
    if report.outcome == "failed":
        _RUN["failed"] = int(str(_RUN["failed"])) + 1


def _whole_suite_ran() -> bool:
    collected = _RUN["collected"]
    ran = _RUN["ran"]
    assert isinstance(collected, set)
    assert isinstance(ran, set)
    modules = {path.name for path in HERE.glob("test_*.py")}
    seen = {nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for nodeid in collected}
    return bool(collected) and modules <= seen and not _RUN["deselected"] and collected <= ran


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran = _RUN["ran"]
    assert isinstance(ran, set)
    if not ran:
        return
    wall = time.monotonic() - float(str(_RUN["started"]))
    terminalreporter.section("reliability figures")
    for line in FIGURES.summary():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"wall time of the run: {wall:.1f} s")
    if _whole_suite_ran() and not _RUN["failed"]:
        write_report(FIGURES, wall_seconds=wall, outcome="all checks passed")
        terminalreporter.write_line("written to docs/reliability.md")
    else:
        terminalreporter.write_line(
            "docs/reliability.md not rewritten: only a full, passing run of tests/reliability "
            "writes it"
        )
