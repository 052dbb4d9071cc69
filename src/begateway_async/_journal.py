"""The journal: every submit's intent, acknowledgement and outcome, durable when it matters.

The Gateway writes three things per submit, each before the step that
depends on it:

1. the **intent** (the request as it will be sent, its ``RequestID``, the
   tracking id, the creation time) before the POST: a crash after this point
   leaves an entry that `Gateway.resume_all` re-sends with the same
   ``RequestID``, never a fresh one;
2. the **acknowledgement** (``request_id``, ``status_url``, ``response_url``)
   once the gateway answered: from then on the task is polled, not re-sent,
   and the request body (card data) is erased from the entry;
3. the **outcome** (the result body, or the one-shot error body whole) before
   any waiter sees it: a body the gateway serves once is never lost to a crash
   between reading it and handing it over.

It also keeps every verified **notification** (webhook) before the Gateway
answers it 200 (`Journal.notified`): after that the gateway will not send it
again, so the record is the only copy (a 3-D Secure payment's final status,
say, for a job that had already ended ``incomplete``).

`MemoryJournal` is the default (nothing survives the process);
`SQLiteJournal` (``Gateway(..., journal="payments.db")``) survives it. A
shared store (a database several processes use) implements the same
`Journal` protocol; its `Journal.unfinished` should lease the entries it
returns to the calling process for a while, so that two processes never poll
or re-send the same entry at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import anyio
import attrs

from ._errors import GatewayError, InvalidRequest

__all__ = [
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalNotification",
    "JournalOutcome",
    "MemoryJournal",
    "SQLiteJournal",
    "open_journal",
]


class JournalError(GatewayError):
    """The journal could not record an entry; the step that needed it was not taken."""


@attrs.frozen
class JournalOutcome:
    """How a submit ended, as recorded.

    Attributes:
        kind: ``"result"`` (a result body), ``"failed"`` (the one-shot error
            body), ``"rejected"`` (the submit was refused), ``"not_sent"``
            (nothing left this machine), or ``"error"`` (a typed error:
            lost, expired, unsafe URL; see ``error``).
        status_code: the answer's HTTP status, when there was an answer.
        body: the answer's body, whole, when there was one.
        error: the error's type name (``"JobLost"``, ...), when it ended in one.
        message: the error's message.
        finished_at: epoch seconds, by the Gateway's clock.
    """

    kind: str
    status_code: int | None = None
    body: bytes | None = attrs.field(default=None, repr=lambda b: f"<{len(b or b'')} bytes>")
    error: str | None = None
    message: str | None = None
    finished_at: float = 0.0


@attrs.frozen
class JournalEntry:
    """One submit, as the journal holds it.

    Attributes:
        key: the ``RequestID`` the submit is sent with (one entry per key).
        gateway: the gateway's base URL.
        shop_id: the shop the submit was made for.
        operation: the operation's name.
        method: the HTTP method of the submit.
        path: the URL path under the base URL (``/async/...``).
        body: the request body as sent; erased once the gateway acknowledged it.
        headers: the request's own headers (``X-API-Version``), as pairs.
        tracking_id: the merchant's id of the transaction, if any.
        tag: the caller's label for the submit, if any.
        created_at: epoch seconds of the first send, by the Gateway's clock.
        request_id: the gateway's task id, once acknowledged.
        status_url: the task's status URL, once acknowledged.
        response_url: the task's result URL, once acknowledged.
        outcome: how it ended, once it did.
    """

    key: str
    gateway: str
    shop_id: str
    operation: str
    method: str
    path: str
    body: bytes | None = attrs.field(repr=False)
    headers: tuple[tuple[str, str], ...]
    tracking_id: str | None
    tag: str | None
    created_at: float
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    outcome: JournalOutcome | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether the gateway acknowledged the submit (it has a task id)."""
        return self.request_id is not None

    @property
    def finished(self) -> bool:
        """Whether the outcome is recorded."""
        return self.outcome is not None


@attrs.frozen
class JournalNotification:
    """One verified notification, as the journal holds it.

    Attributes:
        gateway: the gateway's base URL; shop_id: the shop it was sent for.
        uid: the transaction's uid; tracking_id: its tracking id.
        status: the transaction's status in the notification.
        body: the notification's body, exactly as received.
        received_at: epoch seconds, by the Gateway's clock.
        key: the entry (``RequestID``) whose job it ended, if it ended one.
    """

    gateway: str
    shop_id: str
    uid: str
    tracking_id: str | None
    status: str
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    received_at: float
    key: str | None = None


@runtime_checkable
class Journal(Protocol):
    """Where a Gateway records its submits; see the module's description.

    Every method may raise `JournalError`; the Gateway then does not take the
    step the record was for (it does not send, or does not hand a result over).
    """

    async def intent(self, entry: JournalEntry) -> None:
        """Record a submit about to be sent (the entry has no task id yet)."""

    async def acknowledged(
        self, key: str, request_id: str, status_url: str, response_url: str
    ) -> None:
        """Record the gateway's acknowledgement of the submit ``key``; drop its body."""

    async def finished(self, key: str, outcome: JournalOutcome) -> None:
        """Record how the submit ``key`` ended."""

    async def unfinished(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """The entries of ``gateway`` and ``shop_id`` without an outcome, oldest first."""

    async def entries(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """Every entry of ``gateway`` and ``shop_id``, oldest first."""

    async def notified(self, notification: JournalNotification) -> None:
        """Record a verified notification (when this returns, it may be answered 200)."""

    async def notifications(self, gateway: str, shop_id: str) -> list[JournalNotification]:
        """Every recorded notification of ``gateway`` and ``shop_id``, oldest first."""

    async def aclose(self) -> None:
        """Write what is pending and release the store."""


class MemoryJournal:
    """The default journal: entries in a dict, gone with the process.

    It lets a Gateway that closed with pending jobs hand them to the next
    Gateway in the same process (`Gateway.resume_all`). Finished entries and
    notifications are dropped at once unless ``keep_finished`` is true.
    """

    def __init__(self, *, keep_finished: bool = False) -> None:
        self._entries: dict[str, JournalEntry] = {}
        self._notifications: list[JournalNotification] = []
        self._keep_finished = keep_finished

    def __repr__(self) -> str:
        return f"<MemoryJournal entries={len(self._entries)}>"

    async def intent(self, entry: JournalEntry) -> None:
        """Record a submit about to be sent."""
        self._entries[entry.key] = entry

    async def acknowledged(
        self, key: str, request_id: str, status_url: str, response_url: str
    ) -> None:
        """Record the acknowledgement; drop the body."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = attrs.evolve(
                entry,
                body=None,
                request_id=request_id,
                status_url=status_url,
                response_url=response_url,
            )

    async def finished(self, key: str, outcome: JournalOutcome) -> None:
        """Record the outcome (or drop the entry)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if self._keep_finished:
            self._entries[key] = attrs.evolve(entry, body=None, outcome=outcome)
        else:
            del self._entries[key]

    async def unfinished(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """The unfinished entries of this gateway and shop."""
        return [e for e in await self.entries(gateway, shop_id) if e.outcome is None]

    async def entries(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """Every entry of this gateway and shop."""
        found = [e for e in self._entries.values() if e.gateway == gateway and e.shop_id == shop_id]
        return sorted(found, key=lambda e: e.created_at)

    async def notified(self, notification: JournalNotification) -> None:
        """Keep the notification (with ``keep_finished``; nothing to keep otherwise)."""
        if self._keep_finished:
            self._notifications.append(notification)

    async def notifications(self, gateway: str, shop_id: str) -> list[JournalNotification]:
        """The kept notifications of this gateway and shop, oldest first."""
        return [n for n in self._notifications if n.gateway == gateway and n.shop_id == shop_id]

    async def aclose(self) -> None:
        """Nothing to release."""


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
    file is created readable by its owner only: until the gateway
    acknowledges a submit, its entry holds the request body (card data).

    Args:
        path: the database file; created if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
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
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
            self._connection = connection
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
            if self._connection is not None:
                self._connection.close()
                self._connection = None


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


def open_journal(journal: Journal | str | os.PathLike[str] | None) -> Journal:
    """The journal for a Gateway's ``journal=`` argument (a path opens `SQLiteJournal`)."""
    if journal is None:
        return MemoryJournal()
    if isinstance(journal, str | os.PathLike):
        return SQLiteJournal(journal)
    if isinstance(journal, Journal):
        return journal
    raise InvalidRequest("journal", "must be a path, a Journal, or None")
