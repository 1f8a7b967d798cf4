"""``UsageLedger``: every call recorded exactly once in SQLite, written off the event loop.

``record()`` only puts the record on a queue, so it costs about a microsecond, never awaits and
is safe on the path of a task being cancelled. One writer thread owns the write connection: it
waits up to ``flush_interval`` for records to accumulate, then writes them all in one
transaction (``INSERT OR IGNORE`` on the record's id, so a record given twice is stored once).

A file ledger runs in WAL mode, and its queries read through a connection of their own after a
flush, so a report never holds up the writer. An in-memory ledger has a single connection, the
writer's: its queries travel through the same queue as the records, which also means they see
everything recorded before them.

At interpreter exit a ledger that was never closed is flushed (``weakref.finalize`` runs
then). The writer is a daemon thread so that a forgotten ledger cannot hang the exit, which a
non-daemon thread waiting on its queue would. A process killed by a signal that Python does not
handle (SIGKILL, or SIGTERM without a handler) loses the last ``flush_interval`` of records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.errors import ConfigurationError

__all__ = ["UsageLedger"]

_log = structlog.get_logger("aiecs_llm.accounting.ledger")
_MEMORY = ":memory:"
_BUSY_TIMEOUT = 5.0
# Bounds one transaction so that a writer far behind still commits in steps.
_MAX_BATCH = 5000
_SCHEMA_VERSION = 1
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL, -- ISO-8601 UTC, fixed width: text order is time order
    provider TEXT NOT NULL, model TEXT NOT NULL, requested_model TEXT, stream INTEGER NOT NULL,
    outcome TEXT NOT NULL, error_class TEXT, status_code INTEGER, prompt_tokens INTEGER,
    completion_tokens INTEGER, cached_tokens INTEGER, reasoning_tokens INTEGER, cost REAL,
    latency REAL, time_to_first_chunk REAL, retries INTEGER NOT NULL, fallback_from TEXT,
    cache_hit INTEGER NOT NULL,
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
            "fallback_from", "cache_hit", "tags")  # fmt: skip
_INSERT = (
    f"INSERT OR IGNORE INTO requests ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM requests"


class _Flush:
    """Queue marker: set once everything queued before it is committed (or failed to be)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: sqlite3.Error | None = None


class _Query:
    """Queue job for an in-memory ledger: run on the writer's connection, after what precedes it."""

    def __init__(self, sql: str, params: Sequence[object]) -> None:
        self.sql = sql
        self.params = params
        self.result: Future[list[tuple[Any, ...]]] = Future()


# None on the queue stops the writer, after it has written everything queued before.
_Item = RequestRecord | _Flush | _Query | None


class _Writer:
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
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.queue.put(None)
        self.wake.set()
        if threading.current_thread() is not self.thread:
            self.thread.join()

    def run(self) -> None:
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
                if isinstance(item, _Flush):
                    item.error = error
                    item.done.set()
                elif isinstance(item, _Query):
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

    def query(self, job: _Query) -> None:
        try:
            job.result.set_result(self.connection.execute(job.sql, job.params).fetchall())
        except sqlite3.Error as error:
            job.result.set_exception(error)


class UsageLedger:
    """Every call recorded exactly once in SQLite, written off the event loop.

    Args:
        path: SQLite file (created if missing; its directory must exist), or ``":memory:"`` for
            a ledger that lives as long as this object.
        flush_interval: Longest time, in seconds, a record waits before it is written.

    Raises:
        ConfigurationError: ``path`` cannot be opened and written as a SQLite database.

    """

    def __init__(self, path: str | Path = _MEMORY, *, flush_interval: float = 0.2) -> None:
        self.path = path if str(path) == _MEMORY else Path(path).expanduser()
        self._label = str(self.path)
        self._in_memory = self._label == _MEMORY
        try:
            connection = _open(self.path)
        # ValueError: a NUL in the path ("embedded null byte"); OSError: the path is unusable.
        except (sqlite3.Error, ValueError, OSError) as error:
            raise ConfigurationError(
                f"usage ledger {self._label} cannot be opened for writing: {error}"
            ) from error
        self._writer = _Writer(connection, flush_interval, self._label)
        # Runs on close(), on garbage collection or at interpreter exit, whichever is first.
        self._finalizer = weakref.finalize(self, self._writer.stop)
        _log.debug("llm.ledger.opened", path=self._label)

    @classmethod
    def from_environment(cls) -> UsageLedger:
        """The ledger at ``LLM_USAGE_DB``, or an in-memory one when it is unset or empty.

        Raises:
            ConfigurationError: ``LLM_USAGE_DB`` names a path that cannot be written.

        """
        return cls(os.environ.get("LLM_USAGE_DB") or _MEMORY)

    def record(self, record: RequestRecord) -> None:
        """Queue ``record`` for writing; returns at once and never awaits.

        A record whose ``id`` is already in the ledger is ignored.

        Raises:
            ConfigurationError: The ledger is closed.

        """
        self._writer.put(record, urgent=False)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything recorded so far is committed. Does nothing once closed.

        Raises:
            TimeoutError: The writer did not get there within ``timeout`` seconds.
            sqlite3.Error: The write failed; the records are kept and retried with the next
                batch.

        """
        if self._writer.closed:
            self._writer.thread.join(timeout)  # close() writes everything, maybe still now
            return
        marker = _Flush()
        self._writer.put(marker, urgent=True)
        if not marker.done.wait(timeout):
            raise TimeoutError(f"usage ledger {self._label}: records not written in {timeout}s")
        if marker.error is not None:
            raise marker.error

    async def aflush(self) -> None:
        """``flush()`` without blocking the event loop."""
        await asyncio.to_thread(self.flush)

    def close(self) -> None:
        """Write what is queued and stop the writer. Idempotent; ``record()`` then raises."""
        self._finalizer()

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def rows(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[RequestRecord]:
        """The records started in ``[since, until)`` that carry all of ``tags``, oldest first.

        The same filters, and errors, hold for ``spend()`` and ``count()``.

        Raises:
            ConfigurationError: A bound is a naive datetime, or an in-memory ledger is closed.
            TimeoutError: A file ledger could not flush first (see ``flush()``).
            sqlite3.Error: A file ledger could not flush first, or the file cannot be read.

        """
        where, params = _where(since, until, tags)
        found = self._read(f"{_SELECT}{where} ORDER BY started_at, id", params)
        return [_from_row(row) for row in found]

    def spend(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> float:
        """USD spent by the calls ``rows()`` would return; a call without a price counts 0."""
        where, params = _where(since, until, tags)
        ((total,),) = self._read(f"SELECT TOTAL(cost) FROM requests{where}", params)
        return float(total)

    def count(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> int:
        """How many calls ``rows()`` would return."""
        where, params = _where(since, until, tags)
        ((total,),) = self._read(f"SELECT COUNT(*) FROM requests{where}", params)
        return int(total)

    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        if self._in_memory:
            if self._writer.closed:
                raise ConfigurationError(
                    f"usage ledger {self._label} is closed: its records are gone"
                )
            job = _Query(sql, params)
            self._writer.put(job, urgent=True)
            return job.result.result(timeout=_BUSY_TIMEOUT * 2)
        self.flush()
        with contextlib.closing(sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)) as reader:
            return reader.execute(sql, params).fetchall()


def _open(path: str | Path) -> sqlite3.Connection:
    """The writer's connection, with the schema in place."""
    connection = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        _prepare(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection, path: str | Path) -> None:
    if str(path) != _MEMORY:
        connection.execute("PRAGMA journal_mode = WAL")
        # Durable across a crash of this process (not of the machine), at WAL speed.
        connection.execute("PRAGMA synchronous = NORMAL")
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > _SCHEMA_VERSION:
        raise ConfigurationError(f"usage ledger {path} has schema {version}, newer than ours")
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


def _from_row(row: Sequence[Any]) -> RequestRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["tags"] = json.loads(values["tags"])
    return RequestRecord.model_validate(values)


def _where(
    since: datetime | None, until: datetime | None, tags: Mapping[str, str] | None
) -> tuple[str, list[object]]:
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
