"""The usage ledger's storage: the SQLite schema, rows to and from records, and the writer
thread that owns the write connection (see ``aiecs_llm.accounting.ledger`` for the design).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.errors import ConfigurationError

_log = structlog.get_logger("aiecs_llm.accounting.ledger")
MEMORY = ":memory:"
BUSY_TIMEOUT = 5.0
# Bounds one transaction so that a writer far behind still commits in steps.
_MAX_BATCH = 5000
_SCHEMA_VERSION = 2
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL, -- ISO-8601 UTC, fixed width: text order is time order
    provider TEXT NOT NULL, model TEXT NOT NULL, requested_model TEXT, stream INTEGER NOT NULL,
    outcome TEXT NOT NULL, error_class TEXT, status_code INTEGER, prompt_tokens INTEGER,
    completion_tokens INTEGER, cached_tokens INTEGER, reasoning_tokens INTEGER, cost REAL,
    latency REAL, time_to_first_chunk REAL, retries INTEGER NOT NULL, fallback_from TEXT,
    cache_hit INTEGER NOT NULL,
    cost_estimated INTEGER NOT NULL DEFAULT 0, -- cost is a worst case, not the provider's
    tags TEXT NOT NULL -- JSON object; request_tags is its indexed copy
);
CREATE INDEX IF NOT EXISTS requests_started_at ON requests (started_at);
CREATE TABLE IF NOT EXISTS request_tags (
    request_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (request_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS request_tags_key_value ON request_tags (key, value, request_id);
PRAGMA user_version = {_SCHEMA_VERSION};
"""
_COLUMNS = ("id", "started_at", "provider", "model", "requested_model", "stream", "outcome",
            "error_class", "status_code", "prompt_tokens", "completion_tokens", "cached_tokens",
            "reasoning_tokens", "cost", "latency", "time_to_first_chunk", "retries",
            "fallback_from", "cache_hit", "cost_estimated", "tags")  # fmt: skip
_INSERT = (
    f"INSERT OR IGNORE INTO requests ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
SELECT = f"SELECT {', '.join(_COLUMNS)} FROM requests"


class Flush:
    """Queue marker: set once everything queued before it is committed (or failed to be)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: sqlite3.Error | None = None


class Query:
    """Queue job for an in-memory ledger: run on the writer's connection, after what precedes it."""

    def __init__(self, sql: str, params: Sequence[object]) -> None:
        self.sql = sql
        self.params = params
        self.result: Future[list[tuple[Any, ...]]] = Future()


# None on the queue stops the writer, after it has written everything queued before.
_Item = RequestRecord | Flush | Query | None


class Writer:
    """The queue, the thread and the write connection. Holds no reference to the ledger, so an
    unclosed ledger can still be collected (and its finalizer flush it).
    """

    def __init__(self, connection: sqlite3.Connection, interval: float, label: str) -> None:
        self.connection = connection
        self.interval = interval
        self.label = label
        self.queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.closed = False
        self.pid = os.getpid()
        self.unwritten: list[RequestRecord] = []
        self.thread = threading.Thread(target=self.run, name=f"usage-ledger {label}", daemon=True)
        self.thread.start()

    def put(self, item: _Item, *, urgent: bool) -> None:
        """Queue a record, a flush or a query for the writer thread."""
        # The lock orders puts against close(): nothing can be queued behind the stop marker.
        with self.lock:
            if self.closed:
                raise ConfigurationError(f"usage ledger {self.label} is closed")
            if os.getpid() != self.pid:
                raise ConfigurationError(
                    f"usage ledger {self.label} was opened before a fork; open it in this process"
                )
            self.queue.put(item)
        if urgent:
            self.wake.set()

    def stop(self) -> None:
        """Write what is queued, then end the thread; idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.queue.put(None)
        self.wake.set()
        if threading.current_thread() is not self.thread:
            self.thread.join()

    def run(self) -> None:
        """The writer thread: batch what arrives, commit it, answer flushes and queries."""
        behind = False
        while True:
            first = self.queue.get()
            if isinstance(first, RequestRecord) and not behind:
                self.wake.wait(self.interval)  # let a batch gather; flush and close cut it short
            self.wake.clear()
            items = [first]
            with contextlib.suppress(queue.Empty):
                while len(items) < _MAX_BATCH:
                    items.append(self.queue.get_nowait())
            behind = len(items) == _MAX_BATCH
            records: list[RequestRecord] = []
            for item in items:
                if isinstance(item, RequestRecord):
                    records.append(item)
                    continue
                error = self.write(records)
                records = []
                if isinstance(item, Flush):
                    item.error = error
                    item.done.set()
                elif isinstance(item, Query):
                    self.query(item)
                else:
                    if self.unwritten:
                        _log.error(
                            "llm.ledger.records_lost", path=self.label, records=len(self.unwritten)
                        )
                    self.connection.close()
                    return
            self.write(records)

    def write(self, records: list[RequestRecord]) -> sqlite3.Error | None:
        """Commit ``records`` and any earlier batch that failed; keep them for later on error."""
        batch = [*self.unwritten, *records]
        if not batch:
            return None
        try:
            self.commit(batch)
        except sqlite3.Error as error:
            _log.error(
                "llm.ledger.write_failed", path=self.label, records=len(batch), error=str(error)
            )
            self.unwritten = batch
            return error
        except _UNSTORABLE:
            # One record SQLite cannot hold (an integer beyond 64 bits, say) must neither kill
            # this thread, which would lose every later record, nor be retried forever: write
            # the batch record by record and drop only what cannot be stored.
            return self.write_one_by_one(batch)
        self.unwritten = []
        return None

    def write_one_by_one(self, batch: list[RequestRecord]) -> sqlite3.Error | None:
        """After a batch failed: store each record alone, dropping (and logging) only those
        SQLite cannot store; the error that is not about one record, if any.
        """
        for index, record in enumerate(batch):
            try:
                self.commit([record])
            except sqlite3.Error as error:
                _log.error(
                    "llm.ledger.write_failed",
                    path=self.label,
                    records=len(batch) - index,
                    error=str(error),
                )
                self.unwritten = batch[index:]
                return error
            except _UNSTORABLE as error:
                _log.error(
                    "llm.ledger.record_dropped",
                    path=self.label,
                    request_id=record.id,
                    error=f"{type(error).__name__}: {error}",
                )
        self.unwritten = []
        return None

    def commit(self, batch: list[RequestRecord]) -> None:
        """Store ``batch`` in one transaction."""
        conn = self.connection
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Rows inserted now get rowids above this (nothing else writes inside BEGIN
            # IMMEDIATE), and their tags are copied from the stored rows, so a duplicate record
            # with different tags cannot add tags to the first one.
            (before,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM requests").fetchone()
            conn.executemany(_INSERT, [_to_row(record) for record in batch])
            stored = conn.execute("SELECT id, tags FROM requests WHERE rowid > ?", (before,))
            conn.executemany(
                "INSERT OR IGNORE INTO request_tags (request_id, key, value) VALUES (?, ?, ?)",
                [
                    (request_id, key, value)
                    for request_id, tags in stored.fetchall()
                    for key, value in json.loads(tags).items()
                ],
            )
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    def query(self, job: Query) -> None:
        """Answer a query on the writer's connection (the only one of an in-memory ledger)."""
        try:
            job.result.set_result(self.connection.execute(job.sql, job.params).fetchall())
        except sqlite3.Error as error:
            job.result.set_exception(error)


def open(path: str | Path) -> sqlite3.Connection:
    """The writer's connection, with the schema in place."""
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        _prepare(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection, path: str | Path) -> None:
    if str(path) != MEMORY:
        connection.execute("PRAGMA journal_mode = WAL")
        # Durable across a crash of this process (not of the machine), at WAL speed.
        connection.execute("PRAGMA synchronous = NORMAL")
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > _SCHEMA_VERSION:
        raise ConfigurationError(f"usage ledger {path} has schema {version}, newer than ours")
    if version == 1:  # a ledger written before costs could be estimates
        connection.execute(
            "ALTER TABLE requests ADD COLUMN cost_estimated INTEGER NOT NULL DEFAULT 0"
        )
    connection.executescript(_SCHEMA)


def _timestamp(moment: datetime) -> str:
    # Naive record times are taken as UTC, as RequestRecord documents them.
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# What sqlite3 raises for a value it cannot bind (OverflowError for integers beyond 64 bits)
# or tags json cannot encode: a fault of that record, not of the database.
_UNSTORABLE = (OverflowError, ValueError, TypeError)


def _to_row(record: RequestRecord) -> tuple[object, ...]:
    # getattr rather than model_dump(): this runs per record, and tags need no deep copy.
    values = {name: getattr(record, name) for name in _COLUMNS}
    values["started_at"] = _timestamp(record.started_at)
    values["tags"] = json.dumps(record.tags, sort_keys=True)
    return tuple(values[name] for name in _COLUMNS)


def from_row(row: Sequence[Any]) -> RequestRecord:
    """The record a ``requests`` row holds."""
    values = dict(zip(_COLUMNS, row, strict=True))
    values["tags"] = json.loads(values["tags"])
    return RequestRecord.model_validate(values)


def where_clause(
    since: datetime | None, until: datetime | None, tags: Mapping[str, str] | None
) -> tuple[str, list[object]]:
    """The ``WHERE`` clause and its parameters for a time range and tags."""
    clauses: list[str] = []
    params: list[object] = []
    for name, bound, operator in (("since", since, ">="), ("until", until, "<")):
        if bound is None:
            continue
        if bound.tzinfo is None:
            # A naive bound is most likely local time; guessing would shift budgets silently.
            raise ConfigurationError(f"{name} must be a timezone-aware datetime")
        clauses.append(f"started_at {operator} ?")
        params.append(_timestamp(bound))
    for key, value in (tags or {}).items():
        clauses.append("id IN (SELECT request_id FROM request_tags WHERE key = ? AND value = ?)")
        params.extend((key, value))
    return (f" WHERE {' AND '.join(clauses)}" if clauses else "", params)
