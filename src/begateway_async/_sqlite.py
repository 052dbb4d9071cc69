"""`SQLiteJournal`: the journal in an SQLite file, written in group commits off the event loop."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import anyio

from ._records import JournalEntry, JournalError, JournalNotification, JournalOutcome

__all__ = ["SQLiteJournal"]


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    shop_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body BLOB,
    headers TEXT NOT NULL,
    tracking_id TEXT,
    tag TEXT,
    created_at REAL NOT NULL,
    request_id TEXT,
    status_url TEXT,
    response_url TEXT,
    outcome TEXT,
    status_code INTEGER,
    answer BLOB,
    error TEXT,
    message TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS entries_unfinished
    ON entries (gateway, shop_id, created_at) WHERE outcome IS NULL;
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    gateway TEXT NOT NULL,
    shop_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    tracking_id TEXT,
    status TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at REAL NOT NULL,
    key TEXT
);
"""

_COLUMNS: Final = (
    "key, gateway, shop_id, operation, method, path, body, headers, tracking_id, tag, created_at, "
    "request_id, status_url, response_url, outcome, status_code, answer, error, message, "
    "finished_at"
)

_Write = tuple[str, Sequence[Any]]


class _Batch:
    __slots__ = ("done", "error", "writes")

    def __init__(self) -> None:
        self.writes: list[_Write] = []
        self.done = anyio.Event()
        self.error: BaseException | None = None


class SQLiteJournal:
    """A journal in an SQLite file (stdlib `sqlite3`, WAL, ``synchronous=FULL``).

    Writes are committed in groups in a worker thread, never on the event
    loop: every write that arrives while a commit is under way goes into the
    next one, and each caller returns once its own write is on disk. The
    file is created readable by its owner only. Until the gateway
    acknowledges a submit, its entry holds the request body, sealed (see
    `_sealing`): never card data in clear. Erased rows are overwritten
    (``secure_delete``), and closing folds the write-ahead log into the file
    and empties it.

    Args:
        path: the database file; created if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._open_batch: _Batch | None = None
        self._flushing = False

    def __repr__(self) -> str:
        return f"<SQLiteJournal {str(self.path)!r}>"

    # --- the connection (worker threads only) ----------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            if not self.path.exists():
                self.path.touch(mode=0o600)
            connection = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
                # An erased body (sealed anyway) is overwritten, not left in a free page.
                connection.execute("PRAGMA secure_delete=ON")
                connection.executescript(_SCHEMA)
            except BaseException:
                connection.close()  # a locked file, or not a database: nothing left open
                raise
            self._connection = connection
            # Read again after its Gateway closed it, a journal opens its connection
            # again; it is closed by `aclose`, or when the journal is dropped (never
            # left to the garbage collector, which warns on Python 3.13).
            self._finalizer = weakref.finalize(self, _close, self._lock, connection)
        return self._connection

    def _commit(self, writes: list[_Write]) -> None:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                for statement, parameters in writes:
                    connection.execute(statement, parameters)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _query(self, statement: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connect().execute(statement, parameters).fetchall()

    # --- group commit --------------------------------------------------------------------

    async def _write(self, statement: str, parameters: Sequence[Any]) -> None:
        batch = self._open_batch
        if batch is None:
            batch = self._open_batch = _Batch()
        batch.writes.append((statement, parameters))
        if not self._flushing:
            self._flushing = True
            try:
                # Shielded: a cancelled caller must not leave the others waiting.
                with anyio.CancelScope(shield=True):
                    while self._open_batch is not None:
                        flushing, self._open_batch = self._open_batch, None
                        try:
                            await anyio.to_thread.run_sync(self._commit, flushing.writes)
                        except Exception as exc:  # noqa: BLE001 - handed to every writer
                            flushing.error = exc
                        flushing.done.set()
            finally:
                self._flushing = False
        await batch.done.wait()
        if batch.error is not None:
            raise JournalError(f"cannot write the journal {self.path}: {batch.error}")

    async def _read(self, statement: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return await anyio.to_thread.run_sync(self._query, statement, parameters)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {self.path}: {exc}") from None

    # --- the protocol --------------------------------------------------------------------

    async def intent(self, entry: JournalEntry) -> None:
        """Record a submit about to be sent (on disk when this returns)."""
        await self._write(
            "INSERT OR IGNORE INTO entries (key, gateway, shop_id, operation, method, path, body, "
            "headers, tracking_id, tag, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.key,
                entry.gateway,
                entry.shop_id,
                entry.operation,
                entry.method,
                entry.path,
                entry.body,
                json.dumps(entry.headers),
                entry.tracking_id,
                entry.tag,
                entry.created_at,
            ),
        )

    async def acknowledged(
        self, key: str, request_id: str, status_url: str, response_url: str
    ) -> None:
        """Record the acknowledgement and erase the request body."""
        await self._write(
            "UPDATE entries SET body = NULL, request_id = ?, status_url = ?, response_url = ? "
            "WHERE key = ?",
            (request_id, status_url, response_url, key),
        )

    async def finished(self, key: str, outcome: JournalOutcome) -> None:
        """Record the outcome (on disk when this returns)."""
        await self._write(
            "UPDATE entries SET body = NULL, outcome = ?, status_code = ?, answer = ?, error = ?, "
            "message = ?, finished_at = ? WHERE key = ?",
            (
                outcome.kind,
                outcome.status_code,
                outcome.body,
                outcome.error,
                outcome.message,
                outcome.finished_at,
                key,
            ),
        )

    async def unfinished(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """The unfinished entries of this gateway and shop, oldest first."""
        return await self._select(gateway, shop_id, "AND outcome IS NULL")

    async def notified(self, notification: JournalNotification) -> None:
        """Record a verified notification (on disk when this returns)."""
        n = notification
        await self._write(
            "INSERT INTO notifications (gateway, shop_id, uid, tracking_id, status, body, "
            "received_at, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (n.gateway, n.shop_id, n.uid, n.tracking_id, n.status, n.body, n.received_at, n.key),
        )

    async def notifications(self, gateway: str, shop_id: str) -> list[JournalNotification]:
        """Every recorded notification of this gateway and shop, oldest first."""
        rows = await self._read(
            "SELECT gateway, shop_id, uid, tracking_id, status, body, received_at, key "
            "FROM notifications WHERE gateway = ? AND shop_id = ? ORDER BY id",
            (gateway, shop_id),
        )
        return [JournalNotification(*row) for row in rows]

    async def entries(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """Every entry of this gateway and shop, oldest first."""
        return await self._select(gateway, shop_id, "")

    async def _select(self, gateway: str, shop_id: str, condition: str) -> list[JournalEntry]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM entries WHERE gateway = ? AND shop_id = ? "  # noqa: S608
            f"{condition} ORDER BY created_at",
            (gateway, shop_id),
        )
        return [_entry(row) for row in rows]

    async def aclose(self) -> None:
        """Close the database (pending writes are already committed)."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                if self._finalizer is not None:
                    self._finalizer.detach()
                try:
                    # Fold the write-ahead log into the file and empty it: no older
                    # version of an erased row stays behind in the -wal file.
                    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    connection.close()


def _close(lock: threading.Lock, connection: sqlite3.Connection) -> None:
    """Close ``connection`` once no worker thread uses it (a dropped journal's finalizer)."""
    with lock:
        connection.close()


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    """An entry from a row of ``SELECT {_COLUMNS}``."""
    entry = list(row[:14])
    entry[7] = tuple((name, value) for name, value in json.loads(entry[7]))  # headers
    kind, status_code, answer, error, message, finished_at = row[14:]
    outcome = None
    if kind is not None:
        outcome = JournalOutcome(kind, status_code, answer, error, message, finished_at or 0.0)
    entry.append(outcome)
    return JournalEntry(*entry)
