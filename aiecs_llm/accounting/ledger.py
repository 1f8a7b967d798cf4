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
import os
import sqlite3
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

# The module itself for BUSY_TIMEOUT, read when used (tests shorten it).
from aiecs_llm.accounting import ledger_store
from aiecs_llm.accounting.ledger_store import (
    MEMORY,
    SELECT,
    Flush,
    Query,
    Writer,
    from_row,
    open,
    where_clause,
)
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.errors import ConfigurationError

__all__ = ["UsageLedger"]

_log = structlog.get_logger("aiecs_llm.accounting.ledger")


class UsageLedger:
    """Every call recorded exactly once in SQLite, written off the event loop.

    Args:
        path: SQLite file (created if missing; its directory must exist), or ``":memory:"`` for
            a ledger that lives as long as this object.
        flush_interval: Longest time, in seconds, a record waits before it is written.

    Raises:
        ConfigurationError: ``path`` cannot be opened and written as a SQLite database.

    """

    def __init__(self, path: str | Path = MEMORY, *, flush_interval: float = 0.2) -> None:
        self.path = path if str(path) == MEMORY else Path(path).expanduser()
        self._label = str(self.path)
        self._in_memory = self._label == MEMORY
        self._flush_interval = flush_interval
        self._writer, self._finalizer = self._open_writer()
        _log.debug("llm.ledger.opened", path=self._label)

    def _open_writer(self) -> tuple[Writer, weakref.finalize[[], UsageLedger]]:
        try:
            connection = open(self.path)
        # ValueError: a NUL in the path ("embedded null byte"); OSError: the path is unusable.
        except (sqlite3.Error, ValueError, OSError) as error:
            raise ConfigurationError(
                f"usage ledger {self._label} cannot be opened for writing: {error}"
            ) from error
        writer = Writer(connection, self._flush_interval, self._label)
        # Runs on close(), on garbage collection or at interpreter exit, whichever is first.
        return writer, weakref.finalize(self, writer.stop)

    @property
    def _local_writer(self) -> Writer:
        """The writer of this process. A process forked after the ledger was opened (gunicorn
        ``--preload``, celery prefork) gets a connection and a writer thread of its own: the
        parent's thread does not exist in it, and its calls are paid for all the same.
        """
        if self._writer.pid != os.getpid() and not self._writer.closed:
            self._finalizer.detach()  # the parent's writer is the parent's to stop
            self._writer, self._finalizer = self._open_writer()
            _log.info("llm.ledger.reopened_after_fork", path=self._label, pid=os.getpid())
        return self._writer

    @classmethod
    def from_environment(cls) -> UsageLedger:
        """The ledger at ``LLM_USAGE_DB``, or an in-memory one when it is unset or empty.

        Raises:
            ConfigurationError: ``LLM_USAGE_DB`` names a path that cannot be written.

        """
        return cls(os.environ.get("LLM_USAGE_DB") or MEMORY)

    def record(self, record: RequestRecord) -> None:
        """Queue ``record`` for writing; returns at once and never awaits.

        A record whose ``id`` is already in the ledger is ignored.

        Raises:
            ConfigurationError: The ledger is closed.

        """
        self._local_writer.put(record, urgent=False)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything recorded so far is committed. Does nothing once closed.

        Raises:
            TimeoutError: The writer did not get there within ``timeout`` seconds.
            sqlite3.Error: The write failed; the records are kept and retried with the next
                batch.

        """
        writer = self._local_writer
        if writer.closed:
            writer.thread.join(timeout)  # close() writes everything, maybe still now
            return
        marker = Flush()
        writer.put(marker, urgent=True)
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
        where, params = where_clause(since, until, tags)
        found = self._read(f"{SELECT}{where} ORDER BY started_at, id", params)
        return [from_row(row) for row in found]

    def spend(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> float:
        """USD spent by the calls ``rows()`` would return; a call without a price counts 0."""
        where, params = where_clause(since, until, tags)
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
        where, params = where_clause(since, until, tags)
        ((total,),) = self._read(f"SELECT COUNT(*) FROM requests{where}", params)
        return int(total)

    def _read(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        if self._in_memory:
            writer = self._local_writer
            if writer.closed:
                raise ConfigurationError(
                    f"usage ledger {self._label} is closed: its records are gone"
                )
            job = Query(sql, params)
            writer.put(job, urgent=True)
            return job.result.result(timeout=ledger_store.BUSY_TIMEOUT * 2)
        self.flush()
        with contextlib.closing(
            sqlite3.connect(self.path, timeout=ledger_store.BUSY_TIMEOUT)
        ) as reader:
            return reader.execute(sql, params).fetchall()
