"""`PostgresJournal`: one journal for several workers, on PostgreSQL (extra ``postgres``).

It runs psycopg 3's synchronous API in worker threads, under the journal's
own capacity limiter, as `SQLiteJournal` runs `sqlite3`: the only set-up that
works under asyncio and Trio alike (psycopg's async connection and asyncpg
need an asyncio loop). The SQL lives in `_pgsql`; every time in it is the
database's clock (``now()``), never a worker's.
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import anyio

from . import _pgsql as q
from ._errors import InvalidRequest
from ._records import JournalEntry, JournalError, JournalNotification, JournalOutcome
from ._shared import DuplicateIntent, LeaseLost, NotificationMatch

__all__ = ["PostgresJournal"]

T = TypeVar("T")
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Seconds a lease may last; connections at least (one is the listener's).
MIN_LEASE: Final = 1.0
MAX_LEASE: Final = 3600.0
MIN_POOL: Final = 2


def _psycopg() -> Any:
    try:
        import psycopg  # noqa: PLC0415 - an optional extra
        import psycopg_pool  # noqa: PLC0415
    except ImportError:
        raise JournalError(
            'PostgresJournal needs psycopg: pip install "begateway-async[postgres]"'
        ) from None
    return psycopg, psycopg_pool


class PostgresJournal:
    """A journal in PostgreSQL that several Gateways share, each one a worker with a lease.

    Each Gateway opened on it registers as a worker (one heartbeat every
    ⅓ of ``lease``, not one per job). Its submits are its own; when a
    worker dies (its lease runs out), any other worker of the same gateway
    and shop takes its unfinished entries over at its next heartbeat: it
    polls what was acknowledged and re-sends what was not, with the same
    ``RequestID`` (see `SharedJournal`). A notification delivered to any
    worker resolves the job where it is awaited (``LISTEN``/``NOTIFY``).

    One ``PostgresJournal`` serves one Gateway at a time: give each Gateway
    its own (they may share the database). The schema is created (or brought
    up to date) on first use. Request and answer bodies arrive sealed (see
    `_sealing`): the database holds no card data in clear.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user@host/db``).
        schema: the PostgreSQL schema of the tables (created if missing).
        lease: seconds a worker's lease lasts without a heartbeat.
        pool_size: connections (and worker threads) at most.
        connect_timeout: seconds to wait for a connection before failing.
        one_intent_per_tracking_id: refuse (`DuplicateIntent`) a submit
            whose operation and tracking id another entry already has
            (unless that one was refused or never sent).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "begateway",
        lease: float = 30.0,
        pool_size: int = 8,
        connect_timeout: float = 10.0,
        one_intent_per_tracking_id: bool = False,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise InvalidRequest("dsn", "must be a PostgreSQL connection string")
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidRequest("schema", "must be a lower-case SQL name ([a-z_][a-z0-9_]*)")
        if not isinstance(lease, int | float) or not MIN_LEASE <= lease <= MAX_LEASE:
            raise InvalidRequest("lease", f"must be between {MIN_LEASE} and {MAX_LEASE} seconds")
        if not isinstance(connect_timeout, int | float) or connect_timeout <= 0:
            raise InvalidRequest("connect_timeout", "must be a positive number of seconds")
        if not isinstance(pool_size, int) or pool_size < MIN_POOL:
            raise InvalidRequest("pool_size", f"must be an int of at least {MIN_POOL}")
        self.lease = float(lease)
        self.schema = schema
        self._dsn = dsn
        self._where = _where(dsn)
        self._guard = one_intent_per_tracking_id
        self._connect_timeout = float(connect_timeout)
        # libpq counts whole seconds, and 0 would mean no limit at all.
        self._libpq_timeout = max(1, math.ceil(connect_timeout))
        self._sql = q.Statements(schema)
        self._limiter = anyio.CapacityLimiter(pool_size - 1)  # one connection is the listener's
        self._pool_size = pool_size
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._listener: Any = None
        self._listen_lock = threading.Lock()
        self.worker: str | None = None
        self._scope: tuple[str, str] | None = None
        self._epochs: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<PostgresJournal {self._where} schema={self.schema} worker={self.worker}>"

    # --- threads and connections -----------------------------------------------------

    def _connection_pool(self) -> Any:
        with self._pool_lock:
            if self._pool is None:
                _, psycopg_pool = _psycopg()
                pool = psycopg_pool.ConnectionPool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size - 1,
                    open=False,
                    timeout=self._connect_timeout,
                    kwargs={"autocommit": True, "connect_timeout": self._libpq_timeout},
                )
                try:
                    pool.open(wait=True, timeout=self._connect_timeout)
                    with pool.connection() as connection, connection.transaction():
                        for statement in self._sql.schema:
                            connection.execute(statement)
                except BaseException:
                    pool.close()
                    raise
                self._pool = pool
            return self._pool

    def _transaction(self, work: Callable[[Any], T]) -> T:
        with self._connection_pool().connection() as connection, connection.transaction():
            return work(connection)

    async def _run(self, work: Callable[[Any], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(self._transaction, work, limiter=self._limiter)
        except JournalError:
            raise
        except Exception as exc:  # noqa: BLE001 - psycopg's errors, the pool's timeout
            raise JournalError(f"PostgreSQL at {self._where}: {_said(exc)}") from None

    # --- worker and lease ------------------------------------------------------------

    async def join(self, gateway: str, shop_id: str) -> None:
        """Register as a worker of ``gateway`` and ``shop_id`` with a fresh lease."""
        worker = str(uuid.uuid4())
        host = f"{socket.gethostname()}:{os.getpid()}"
        await self._run(
            lambda c: c.execute(self._sql.join, (worker, gateway, shop_id, host, self.lease))
        )
        self.worker, self._scope = worker, (gateway, shop_id)
        try:  # listening from now on: what ends elsewhere from here wakes this worker
            await anyio.to_thread.run_sync(self._connect_listener)
        except Exception as exc:  # noqa: BLE001 - psycopg's errors
            raise JournalError(f"PostgreSQL at {self._where}: {_said(exc)}") from None

    async def heartbeat(self) -> bool:
        """Renew the lease; False if it had run out (then join again)."""
        worker = self.worker

        def beat(c: Any) -> bool:
            alive = c.execute(self._sql.heartbeat, (self.lease, worker)).fetchone() is not None
            c.execute(self._sql.forget_workers)
            return alive

        # A lost lease keeps the epochs: a poll still out then writes nothing (`LeaseLost`).
        return await self._run(beat)

    async def claim(self, limit: int) -> list[JournalEntry]:
        """Take up to ``limit`` entries that are nobody's or a dead worker's, oldest first."""
        gateway, shop_id = self._joined()
        rows = await self._run(
            lambda c: c.execute(
                self._sql.claim, (gateway, shop_id, self.worker, limit, self.worker)
            ).fetchall()
        )
        entries = sorted((q.entry(row[:-1]) for row in rows), key=lambda e: e.created_at)
        self._epochs.update((row[0], row[-1]) for row in rows)
        return entries

    async def release(self) -> None:
        """Hand this worker's unfinished entries back, leave, and stop listening."""
        if self.worker is not None:
            worker = self.worker
            await self._run(lambda c: [c.execute(s, (worker,)) for s in self._sql.release])
            self.worker = None
            self._epochs.clear()
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._listener is not None and self._pool is not None:
                # Wake the listener at once (an empty payload), rather than after its timeout.
                await self._run(lambda c: c.execute(self._sql.wake, (self._sql.channel, "")))
            await anyio.to_thread.run_sync(self._close_listener)

    def _close_listener(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _joined(self) -> tuple[str, str]:
        if self._scope is None or self.worker is None:
            raise LeaseLost("this journal has no worker: open a Gateway on it first")
        return self._scope

    # --- the journal -----------------------------------------------------------------

    async def intent(self, entry: JournalEntry) -> None:
        """Record a submit about to be sent, as this worker's (committed when this returns)."""
        e = entry

        def insert(c: Any) -> int:
            guarded = self._guard and e.tracking_id is not None
            if guarded:
                lock = q.lock_key(e.gateway, e.shop_id, e.tracking_id or "")
                c.execute(self._sql.lock, (lock,))
            row = c.execute(self._sql.intent, (*q.intent_values(e), self.worker)).fetchone()
            if row is None:  # the same key again, and the entry is not ours to take
                (unfinished,) = c.execute(self._sql.standing, (e.key,)).fetchone()
                held = "is another live worker's" if unfinished else "ended (its end is on record)"
                raise DuplicateIntent(
                    f"the submit with RequestID {e.key} {held}; nothing was sent", key=e.key
                )
            if guarded and row[1]:
                found = c.execute(
                    self._sql.same_intent, (e.gateway, e.shop_id, e.operation, e.tracking_id, e.key)
                ).fetchone()
                if found is not None:  # raised in the transaction: the insert is undone
                    raise DuplicateIntent(
                        f"a {e.operation} with tracking_id {e.tracking_id!r} is on record already "
                        f"(RequestID {found[0]}); nothing was sent",
                        key=found[0],
                    )
            return int(row[0])

        self._epochs[entry.key] = await self._run(insert)

    async def acknowledged(
        self, key: str, request_id: str, status_url: str, response_url: str
    ) -> None:
        """Record the acknowledgement and erase the request body."""
        values = (request_id, status_url, response_url, key)
        await self._run(lambda c: c.execute(self._sql.acknowledged, values))

    async def finished(self, key: str, outcome: JournalOutcome) -> JournalOutcome | None:
        """Record ``outcome`` unless one is on record; None if it was, else the one that stands.

        Raises:
            LeaseLost: another worker claimed the entry since, and it has no outcome yet.
        """
        epoch = self._epochs.get(key)

        def finish(c: Any) -> JournalOutcome | None:
            values = (*q.outcome_values(outcome), key, epoch, epoch, self.worker)
            done = c.execute(self._sql.finish, values)
            if done.fetchone() is not None:
                return None
            row = c.execute(self._sql.outcome_of, (key,)).fetchone()
            if row is None:
                return None  # no such entry: nothing to record
            standing = q.outcome(row[1:])
            if standing is None:
                raise LeaseLost(f"the entry {key} is another worker's now")
            return standing

        # The epoch is dropped once the entry is settled, or known to be another's; a
        # failed write keeps it, so the retry is fenced as the first attempt was.
        try:
            standing = await self._run(finish)
        except LeaseLost:
            self._epochs.pop(key, None)
            raise
        self._epochs.pop(key, None)
        return standing

    async def unfinished(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """Claim the entries of this gateway and shop that no live worker holds, oldest first."""
        if self._scope != (gateway, shop_id):
            return []
        claimed: list[JournalEntry] = []
        while batch := await self.claim(500):
            claimed += batch
        return claimed

    async def entries(self, gateway: str, shop_id: str) -> list[JournalEntry]:
        """Every entry of this gateway and shop, oldest first."""
        scope = (gateway, shop_id)
        rows = await self._run(lambda c: c.execute(self._sql.entries, scope).fetchall())
        return [q.entry(row) for row in rows]

    async def notified(self, notification: JournalNotification) -> None:
        """Record a verified notification (committed when this returns)."""
        values = q.notification_values(notification)
        await self._run(lambda c: c.execute(self._sql.notified, values))

    async def notifications(self, gateway: str, shop_id: str) -> list[JournalNotification]:
        """Every recorded notification of this gateway and shop, oldest first."""
        rows = await self._run(
            lambda c: c.execute(self._sql.notifications, (gateway, shop_id)).fetchall()
        )
        return [JournalNotification(*row) for row in rows]

    # --- notifications anywhere ------------------------------------------------------

    async def match_notification(
        self, notification: JournalNotification, match: NotificationMatch
    ) -> str | None:
        """Record ``notification``; end the one entry it belongs to; wake its owner."""
        n, sql = notification, self._sql

        def deliver(c: Any) -> str | None:
            c.execute(sql.lock, (q.lock_key(n.gateway, n.shop_id, match.tracking_id),))
            found = c.execute(
                sql.candidates, (n.gateway, n.shop_id, match.tracking_id, list(match.operations))
            ).fetchall()
            used = c.execute(sql.uid_used, (n.gateway, n.shop_id, n.uid)).fetchone() is not None
            key: str | None = None
            if len(found) == 1 and not used:
                key, created_at = found[0]
                if match.created_at is not None and match.created_at < created_at - match.skew:
                    key = None  # an earlier transaction with the same tracking id
            c.execute(sql.notified, q.notification_values(n, key=key))
            if key is not None:
                c.execute(sql.finish_any, (*q.outcome_values(match.outcome(key)), key))
                c.execute(sql.wake, (sql.channel, key))
            return key

        return await self._run(deliver)

    async def woken(self, timeout: float) -> list[str] | None:
        """Keys ended elsewhere (``NOTIFY``), waiting up to ``timeout``; None after a reconnect."""
        try:
            return await anyio.to_thread.run_sync(self._listen, timeout, abandon_on_cancel=True)
        except Exception as exc:  # noqa: BLE001 - psycopg's errors
            raise JournalError(f"PostgreSQL at {self._where}: {_said(exc)}") from None

    def _connect_listener(self) -> bool:
        """Connect the listener if it is not; True if it was not (wake-ups may be missed)."""
        with self._listen_lock:
            if self._listener is not None:
                return False
            psycopg, _ = _psycopg()
            listener = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self._libpq_timeout
            )
            listener.execute(self._sql.listen)
            self._listener = listener
            return True

    def _listen(self, timeout: float) -> list[str] | None:
        if self._connect_listener():
            return None
        with self._listen_lock:
            if self._listener is None:  # closed meanwhile
                return []
            try:
                # Back with the first batch that arrives (every one already received).
                found = self._listener.notifies(timeout=timeout, stop_after=1)
                # An empty payload only wakes the listener (the journal closes).
                return [n.payload for n in found if n.payload]
            except Exception:
                self._listener.close()
                self._listener = None
                raise

    async def outcomes(self, keys: Sequence[str]) -> dict[str, JournalOutcome]:
        """The recorded outcomes of those of ``keys`` that have one."""
        rows = await self._run(lambda c: c.execute(self._sql.outcomes, (list(keys),)).fetchall())
        found = {row[0]: q.outcome(row[1:]) for row in rows}
        return {key: outcome for key, outcome in found.items() if outcome is not None}

    async def aclose(self) -> None:
        """Close the listener and the pool (every write is committed already)."""
        with anyio.CancelScope(shield=True):
            await self._stop_listening()
            await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        self._close_listener()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def _where(dsn: str) -> str:
    """``host:port/dbname`` of a DSN (never its password)."""
    try:
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - an optional extra

        info = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - no psycopg, or a DSN it cannot read: say little
        return "<the given DSN>"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _said(exc: BaseException) -> str:
    """What a driver error says, on one line (psycopg's messages carry no password)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
