"""The reliability suite's figures, the canary check, and docs/reliability.md.

Each test adds what it did to the session's ``Figures`` (requests made, faults injected and
survived, inputs tried, records lost); ``conftest.py`` prints them at the end of the run and,
when the whole suite ran and passed, writes them to ``docs/reliability.md``.
"""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "reliability.md"
SLICE = 8
"""A leak is any run of this many consecutive canary characters (what redaction removes)."""


def assert_no_canary(data: str | bytes, canary: str, where: str = "output") -> None:
    """Fail if ``canary``, or any ``SLICE``-character slice of it, occurs in ``data``."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    needle = canary.encode().decode("latin-1") if isinstance(data, bytes) else canary
    for start in range(len(needle) - SLICE + 1):
        piece = needle[start : start + SLICE]
        found = text.find(piece)
        if found >= 0:
            context = text[max(found - 60, 0) : found + SLICE + 60]
            raise AssertionError(
                f"canary slice {piece!r} leaked into {where} at offset {found}: ...{context!r}..."
            )


@dataclass
class Figures:
    """Counts collected over one run of the reliability suite."""

    requests: int = 0
    """Calls made through the client, every area included."""
    faults_injected: int = 0
    faults_survived: int = 0
    """Injected faults after which the call still answered (retry or fallback)."""
    inputs_tried: int = 0
    """Bad inputs, configurations and malformed answers fed to the library."""
    records_lost: int = 0
    """Calls started minus ledger rows, summed over every check that compares them."""
    leak_checks: int = 0
    """Texts and files scanned for the canary key."""
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults_by_kind: Counter[str] = field(default_factory=Counter)
    errors_by_class: Counter[str] = field(default_factory=Counter)
    known_bugs: dict[str, str] = field(default_factory=dict)
    """xfail(strict=True) tests that failed as expected: test id -> the bug and its fix."""

    def section(self, name: str, **values: Any) -> None:
        """Record the detailed figures of one area (load, cancellation, ...)."""
        self.sections.setdefault(name, {}).update(values)

    def summary(self) -> list[str]:
        """The block printed at the end of the run."""
        lines = [
            f"requests made through the client: {self.requests}",
            f"faults injected: {self.faults_injected}  survived: {self.faults_survived}",
            f"bad inputs / configurations / malformed answers tried: {self.inputs_tried}",
            f"texts and files scanned for the canary key: {self.leak_checks}",
            f"records lost (calls started - ledger rows): {self.records_lost}",
        ]
        if self.faults_by_kind:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_by_kind.items()))
            lines.append(f"faults by kind: {kinds}")
        if self.errors_by_class:
            errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors_by_class.items()))
            lines.append(f"load-test calls that failed, by class: {errors}")
        for name, values in sorted(self.sections.items()):
            details = ", ".join(f"{key}={_plain(value)}" for key, value in values.items())
            lines.append(f"{name}: {details}")
        groups = {nodeid.split("[", 1)[0] for nodeid in self.known_bugs}
        lines.append(
            f"known library bugs pinned by strict xfail tests: {len(groups)} "
            f"({len(self.known_bugs)} test cases)"
        )
        return lines


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(figures: Figures, *, wall_seconds: float, outcome: str) -> None:
    """Write docs/reliability.md from this run's figures."""
    load = figures.sections.get("load", {})
    cancel = figures.sections.get("cancellation", {})
    rows = [
        ("requests made through the client", figures.requests),
        ("of which in the load test", load.get("requests", "-")),
        ("faults injected (server side)", figures.faults_injected),
        ("faults survived (the call still answered)", figures.faults_survived),
        ("bad inputs, configurations and malformed answers tried", figures.inputs_tried),
        ("texts and files scanned for the canary key", figures.leak_checks),
        ("calls cancelled mid-way (cancellation test)", cancel.get("cancelled", "-")),
        ("records lost", figures.records_lost),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    bugs: dict[str, str] = {}
    for nodeid, reason in sorted(figures.known_bugs.items()):
        bugs.setdefault(nodeid.split("[", 1)[0].split("::", 1)[-1], reason)
    known = "\n".join(f"- `{test}`: {reason}" for test, reason in bugs.items()) or "- none"
    detail = "\n".join(f"- {line}" for line in figures.summary())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = f"{platform.python_implementation()} {platform.python_version()}"
    REPORT.write_text(
        _TEMPLATE.format(
            table=table,
            detail=detail,
            stamp=stamp,
            machine=machine,
            wall=f"{wall_seconds:.0f}",
            outcome=outcome,
            load_seconds=_plain(load.get("seconds", "-")),
            known=known,
        ),
        encoding="utf-8",
    )


_TEMPLATE = """\
# Reliability

What `tests/reliability/` checks, and the figures of its last full run ({stamp}, {machine},
{wall} s wall time, {outcome}). This page is rewritten by the suite itself whenever the whole
suite runs: do not edit the figures by hand.

Reproduce:

```bash
nox -s tests -- tests/reliability
# or, in the project's virtualenv:
python -m pytest tests/reliability -q -p no:cacheprovider
```

The figures are printed at the end of every run of the suite as well.

| figure | value |
|---|---|
{table}

## What is checked

1. **Secrets.** A canary API key (random, not key-shaped, so pattern-based scrubbing cannot
   help) is pushed through success, every error class, retries, fallbacks, key rotation and
   health checks, on all three providers, plain and streamed. The test fails if the canary or
   any 8-character slice of it appears in: structlog events captured at DEBUG, a real
   structlog renderer writing to a buffer, stdlib logging at DEBUG (LiteLLM, httpx, the
   OpenAI SDK), stdout/stderr, `repr`/`str` of clients, settings, errors (with their whole
   `__cause__` chain) and responses, the Prometheus export, the raw bytes of a file ledger,
   a cassette written by the recorder, the CLI's `--debug` output in a subprocess, and an
   application's log of a caught error with its traceback rendered with the frames' locals
   (rich through structlog's `ConsoleRenderer`, and `dict_tracebacks`; short and long keys).
   `aiecs-llm demo` and `validate_api_key()` must not follow `OPENAI_BASE_URL` /
   `ANTHROPIC_BASE_URL` from the environment.
2. **Bad input.** Property-based tests (hypothesis, derandomized so CI sees the same
   examples) feed malformed messages, non-UTF-8 text, out-of-range and wrongly typed
   parameters, dict messages with other keys, parameters the client sets itself, models that
   are not strings or hold control characters, unknown model strings, random TOML config
   files, non-UTF-8 files, keys no HTTP header can carry and random environment values to
   the public API: each must fail with `ValueError`, `ConfigurationError` or
   `InvalidRequestError` (unknown models: `ModelNotFoundError`; a conversation larger than
   every context window of the chain: `ContextWindowExceededError`) before any HTTP request
   reaches the local server. Malformed provider answers (truncated JSON, fields of the wrong
   type or missing, empty choices, invalid SSE) must end as a classified `LLMClientError`
   with exactly one ledger row, never as an `AttributeError`; unreadable answers and answers
   without their usage report as `InvalidResponseError` (a stream that already yielded text:
   `StreamInterruptedError`), neither retried nor counted by the circuit breaker.
3. **Load with faults.** {load_seconds} s: 10,000 calls (one in five streamed, the three
   providers in turn) at concurrency 256 against the fault-injecting server running in a
   separate process, 5 % of its answers faults of mixed kinds (429, 500, 503, 529,
   connection resets, truncated JSON, streams cut before and after the first text, hangs).
   Retries and three-provider fallback chains survive most of them. Every call ends as an
   answer or a classified error; the server's counts agree with the ledger (each answered
   call took exactly one good answer, every other request served was an injected fault);
   ledger rows equal calls; the metrics agree with the ledger (requests, outcomes, errors by
   class, retries, cost); a per-tag budget that the run exhausts part-way is never
   overshot (checked after every call) and holds no reservation at the end; no asyncio task,
   TCP connection or HTTP client outlives `client.close()`; resident memory grows less than
   30 MB over the second half of the run (read at quiet points between quarters).
4. **Cancellation and shutdown.** Calls and streams cancelled at random points (seeded),
   streams closed mid-way with `aclose()`, and `client.close()` while calls are in flight:
   every client and provider concurrency slot and rate-limiter place is released, no budget
   reservation is left, the ledger has one row per call started, no task is left pending.
   `close()` ends the calls and streams in flight at once (no idle timeout), as
   `ConfigurationError` with code `client_closed` (a stream past its first text:
   `StreamInterruptedError`) that the shared circuit breaker does not count, and leaves no
   HTTP client or connection open.

## Known bugs

Each is pinned by a test marked `xfail(strict=True)` whose reason names the bug and the fix;
the test turns into a failure (and must be unmarked) once the bug is fixed.

{known}

## Details of the last run

{detail}
"""
