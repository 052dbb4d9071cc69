"""`PostgresJournal`: one journal for several workers, on PostgreSQL (extra ``postgres``).

The connections and their threads are `_pgdb`'s; the SQL lives in `_pgsql`,
and every time in it is the database's clock, never a worker's.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

import anyio

from . import _pgsql as q
from ._errors import InvalidRequest
from ._pgdb import Database
from ._records import JournalEntry, JournalNotification, JournalOutcome
from ._shared import DuplicateIntent, LeaseLost, NotificationMatch

__all__ = ["PostgresJournal"]

_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Seconds a lease may last; connections at least (one is the listener's).
MIN_LEASE: Final = 1.0
MAX_LEASE: Final = 3600.0
#: Connections at least: one for the listener, one for the heartbeat, one for the rest.
MIN_POOL: Final = 3
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
#: Entries one claim takes at most.
CLAIM_BATCH: Final = 500


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
        pool_size: connections (and worker threads) at most, the heartbeat's
            and the listener's own included (at least 3).
        connect_timeout: seconds to wait for a connection before failing:
            less than a third of the lease (a heartbeat must not wait longer);
            by default 10 s, or a quarter of the lease if that is shorter.
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
        connect_timeout: float | None = None,
        one_intent_per_tracking_id: bool = False,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise InvalidRequest("dsn", "must be a PostgreSQL connection string")
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidRequest("schema", "must be a lower-case SQL name ([a-z_][a-z0-9_]*)")
        if not isinstance(lease, int | float) or not MIN_LEASE <= lease <= MAX_LEASE:
            raise InvalidRequest("lease", f"must be between {MIN_LEASE} and {MAX_LEASE} seconds")
        if connect_timeout is None:
            connect_timeout = min(DEFAULT_CONNECT_TIMEOUT, lease / 4)
        if not isinstance(connect_timeout, int | float) or connect_timeout <= 0:
            raise InvalidRequest("connect_timeout", "must be a positive number of seconds")
        if connect_timeout >= lease / 3:
            # A heartbeat waiting longer than a third of the lease would lose it.
            raise InvalidRequest("connect_timeout", "must be less than a third of the lease")
        if not isinstance(pool_size, int) or pool_size < MIN_POOL:
            raise InvalidRequest("pool_size", f"must be an int of at least {MIN_POOL}")
        self.lease = float(lease)
        self.schema = schema
        self._guard = one_intent_per_tracking_id
        self._sql = q.Statements(schema)
        self._db = Database(
            dsn,
            pool_size=pool_size - 2,  # the listener and the heartbeat have their own
            connect_timeout=connect_timeout,
            dead_after=self.lease / 3,
            migrate=self._migrate,
        )
        self._run = self._db.run
        self._listener = self._db.link(setup=(self._sql.listen,))
        self._beats = self._db.link()
        self._probed = 0.0
        self.worker: str | None = None
        self._scope: tuple[str, str] | None = None
        self._epochs: dict[str, int] = {}

    @property
    def transactions(self) -> int:
        """Transactions this journal ran on its pool (the heartbeat's and the listener's apart)."""
        return self._db.transactions

    def __repr__(self) -> str:
        return f"<PostgresJournal {self._db.where} schema={self.schema} worker={self.worker}>"

    def _migrate(self, connection: Any) -> None:
        """Create the schema, or bring it up to date, unless it is current."""
        exists, current = self._sql.current
        if connection.execute(exists).fetchone()[0]:
            row = connection.execute(current).fetchone()
            if row is not None and row[0]:
                return
        with connection.transaction():
            for statement in self._sql.schema:
                connection.execute(statement)

    # --- worker and lease ------------------------------------------------------------

    async def join(self, gateway: str, shop_id: str) -> None:
        """Register as a worker of ``gateway`` and ``shop_id`` with a fresh lease."""
        worker = str(uuid.uuid4())
        host = f"{socket.gethostname()}:{os.getpid()}"
        await self._run(
            lambda c: c.execute(self._sql.join, (worker, gateway, shop_id, host, self.lease))
        )
        self.worker, self._scope = worker, (gateway, shop_id)
        self._listener.open()
        self._beats.open()
        # Listening from now on: what ends elsewhere from here wakes this worker.
        await self._db.on_link(self._listener, lambda _: None)

    async def heartbeat(self) -> bool:
        """Renew the lease; False if it had run out (then join again).

        The heartbeat has a connection of its own: a pool busy with long
        queries does not hold it up.
        """
        worker = self.worker

        def beat(c: Any) -> bool:
            alive = c.execute(self._sql.heartbeat, (self.lease, worker)).fetchone() is not None
            c.execute(self._sql.forget_workers)
            return alive

        alive, _ = await self._db.on_link(self._beats, beat)
        if not alive:
            # Every job of the lost lease is dropped: nothing of theirs is written any more.
            self._epochs.clear()
        return alive

    async def claim(self, limit: int) -> list[JournalEntry]:
        """Take up to ``limit`` entries that are nobody's or a dead worker's, oldest first.

        Workers whose lease ran out are marked dead first (a heartbeat of
        theirs renews nothing after that); nothing is claimed under a lease
        that ran out.
        """
        gateway, shop_id = self._joined()
        worker = self.worker

        def claim(c: Any) -> Any:
            if c.execute(self._sql.alive, (worker,)).fetchone() is None:
                return []  # the heartbeat finds out, and joins again
            c.execute(self._sql.bury, (gateway, shop_id))
            return c.execute(self._sql.claim, (gateway, shop_id, limit, worker)).fetchall()

        return self._taken(await self._run(claim))

    def _taken(self, rows: list[Any]) -> list[JournalEntry]:
        self._epochs.update((row[0], row[-1]) for row in rows)
        return sorted((q.entry(row[:-1]) for row in rows), key=lambda e: e.created_at)

    async def hand_back(self, key: str) -> None:
        """Give up this worker's entry ``key``: any live worker claims it at its next beat."""
        epoch, worker = self._epochs.pop(key, None), self.worker
        await self._run(lambda c: c.execute(self._sql.hand_back, (key, worker, epoch, epoch)))

    async def release(self) -> None:
        """Hand this worker's unfinished entries back, leave, and stop listening."""
        try:
            if self.worker is not None:
                worker = self.worker
                await self._run(lambda c: [c.execute(s, (worker,)) for s in self._sql.release])
                self.worker = None
                self._epochs.clear()
        finally:
            await self._stop_listening()

    async def _stop_listening(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                if self._listener.connected and self._db.started:
                    # Wake the listener at once (an empty payload), rather than after its wait.
                    await self._run(lambda c: c.execute(self._sql.wake, (self._sql.channel, "")))
            finally:
                await anyio.to_thread.run_sync(self._listener.close)
                await anyio.to_thread.run_sync(self._beats.close)

    def _joined(self) -> tuple[str, str]:
        if self._scope is None or self.worker is None:
            raise LeaseLost("this journal has no worker: open a Gateway on it first")
        return self._scope

    # --- the journal -----------------------------------------------------------------

    async def intent(self, entry: JournalEntry) -> None:
        """Record a submit about to be sent, as this worker's (committed when this returns)."""
        e = entry

        def insert(c: Any) -> int:
            if c.execute(self._sql.alive, (self.worker,)).fetchone() is None:
                raise LeaseLost("this worker's lease ran out; nothing was sent")
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

        The gateway's own answers (a result, a one-shot error body, a
        refusal) are recorded by whichever worker holds one first. Any
        other end (not sent, lost, expired) is this worker's conclusion, and
        is recorded only under the claim it was reached in.

        Raises:
            LeaseLost: the end is this worker's conclusion, and another worker
                claimed the entry since (it has no outcome yet).
        """
        epoch, answer = self._epochs.get(key), q.is_answer(outcome)

        def finish(c: Any) -> JournalOutcome | None:
            values = (*q.outcome_values(outcome), key)
            if answer:
                done = c.execute(self._sql.finish_any, values)
            else:
                fence = (epoch, epoch, self.worker, outcome.kind)
                done = c.execute(self._sql.finish, (*values, *fence))
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
        """This worker's unfinished entries, and those it claims now, oldest first.

        What this worker holds, it is given again (as `SQLiteJournal` gives
        every unfinished entry); what no live worker holds, it claims.
        """
        if self._scope != (gateway, shop_id):
            return []
        worker = self.worker
        scope = (gateway, shop_id, worker)
        own = self._taken(await self._run(lambda c: c.execute(self._sql.own, scope).fetchall()))
        while batch := await self.claim(CLAIM_BATCH):
            own += batch
        return sorted(own, key=lambda e: e.created_at)

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

        key = await self._run(deliver)
        if key is not None:
            self._epochs.pop(key, None)
        return key

    async def woken(self, timeout: float) -> list[str] | None:
        """Keys ended elsewhere (``NOTIFY``), waiting up to ``timeout``; None after a reconnect.

        A listener that heard nothing for a third of the lease asks the
        server a trivial query: a connection whose peer is gone then fails
        (within the TCP user timeout) and is connected again.
        """
        keys, fresh = await self._db.on_link(self._listener, lambda c: self._listen(c, timeout))
        return None if fresh else keys

    def _listen(self, connection: Any, timeout: float) -> list[str]:
        # Back with the first batch that arrives (every one already received).
        found = connection.notifies(timeout=timeout, stop_after=1)
        if found:
            self._probed = time.monotonic()
        elif time.monotonic() - self._probed > self.lease / 3:
            connection.execute("SELECT 1")
            self._probed = time.monotonic()
        # An empty payload only wakes the listener (the journal closes).
        return [n.payload for n in found if n.payload]

    async def outcomes(self, keys: Sequence[str]) -> dict[str, JournalOutcome]:
        """The recorded outcomes of those of ``keys`` that have one."""
        rows = await self._run(lambda c: c.execute(self._sql.outcomes, (list(keys),)).fetchall())
        found = {row[0]: q.outcome(row[1:]) for row in rows}
        ended = {key: outcome for key, outcome in found.items() if outcome is not None}
        for key in ended:  # ended: nothing of this worker's is written for it any more
            self._epochs.pop(key, None)
        return ended

    async def aclose(self) -> None:
        """Close the listener, the heartbeat's connection and the pool (all is committed)."""
        with anyio.CancelScope(shield=True):
            try:
                await self._stop_listening()
            finally:
                await self._db.aclose()

    def close(self) -> None:
        """Close every connection now, from synchronous code (blocks; prefer `aclose`)."""
        self._listener.close()
        self._beats.close()
        self._db.close()
