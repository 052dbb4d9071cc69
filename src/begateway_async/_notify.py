"""Taking the gateway's notifications: verify, record, end the job they belong to, wake follows.

A notification matches a job when exactly one pending job has the
transaction's tracking id and an operation of its type, the transaction was
not created before that job's submit, and its uid did not already end
another job. Whichever comes first, poll or notification, ends the job; the
other changes nothing (a poll that returns while a notification is being
journalled drops its answer, and the other way round).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

from . import _protocol as p
from . import _steps as s
from ._clock import Timebase
from ._follow import Follower
from ._journal import Journal
from ._models import Transaction
from ._records import JournalNotification, JournalOutcome
from ._registry import Tracked
from ._sealing import Sealer
from ._shared import NotificationMatch, SharedJournal
from ._submit import Submitter, notification_key, outcome_key
from ._tracker import Tracker
from ._webhooks import Headers, Notification, WebhookVerifier

__all__ = ["Notifier"]

logger = logging.getLogger("begateway_async.webhooks")

#: A notification's transaction created more than this before a job's submit
#: is not that job's (an earlier attempt with the same tracking id); allows
#: for the gateway's clock and ours disagreeing a little.
CLOCK_SKEW: Final = 5.0


class Notifier:
    """The notification path of one Gateway (`Gateway.deliver`).

    Args:
        tracker: the pending jobs a notification may end.
        submitter: journals the end of the job a notification ends.
        journal: where notifications are recorded.
        sealer: seals each notification's body before the journal keeps it.
        verifier: checks each notification's credentials and signature.
        follower: the follows a final notification wakes.
        shop_id: the shop the notifications are for.
        timebase: the Gateway's time.
    """

    def __init__(
        self,
        *,
        tracker: Tracker,
        submitter: Submitter,
        journal: Journal,
        sealer: Sealer,
        verifier: WebhookVerifier,
        follower: Follower,
        shop_id: str,
        timebase: Timebase,
    ) -> None:
        self._tracker = tracker
        self._submitter = submitter
        self._journal = journal
        self._sealer = sealer
        self._verifier = verifier
        self._follower = follower
        self._shop_id = shop_id
        self._timebase = timebase
        self._shared = journal if isinstance(journal, SharedJournal) else None

    async def deliver(self, body: bytes, headers: Headers) -> Notification:
        """Verify, record and act on one notification (see `Gateway.deliver`)."""
        transaction = self._verifier.verify(body, headers)
        raw = bytes(body)
        uid = transaction.uid
        assert uid is not None  # noqa: S101 - the verifier requires one
        now = self._timebase.time()
        registry = self._tracker.registry
        if self._shared is not None:
            return await self._deliver_shared(self._shared, transaction, raw, now)
        tracked = self._match(transaction)
        if tracked is not None:
            # Another answer for this job may be being journalled: it ends the
            # job, unless the journal failed it (then this one may).
            await registry.unclaimed(tracked.job)
        owner = tracked if tracked is not None and tracked.job.polling else None
        record = JournalNotification(
            self._tracker.base_url,
            self._shop_id,
            uid,
            transaction.tracking_id,
            str(transaction.status),
            self._sealer.seal(raw, key=notification_key(uid)),
            now,
            key=owner.journal_key if owner is not None else None,
        )
        resolved = False
        if owner is None or owner.journal_key is None:
            await self._journal.notified(record)
            self._tracker.observer.notified(transaction, None)
        else:
            with registry.claim(owner.job):
                await self._journal.notified(record)
                await self._submitter.record(owner.journal_key, JournalOutcome("result", 200, raw))
            self._tracker.observer.notified(transaction, owner.job)
            if owner.job.polling:
                await self._tracker.settle(owner, p.Done(transaction.raw))
                resolved = owner.job.done()
                logger.debug("request_id=%s resolved by a notification", owner.job.request_id)
        followed = self._follower.wake(transaction)
        job = tracked.job if tracked is not None else None
        return Notification(transaction, job, resolved=resolved, followed=followed, received_at=now)

    async def _deliver_shared(
        self, journal: SharedJournal, transaction: Transaction, raw: bytes, now: float
    ) -> Notification:
        """Deliver on a shared journal: the entry may be any worker's; the journal decides.

        Recording the notification, finding the one unfinished entry it
        belongs to (any worker's), recording that entry's end and waking its
        owner are one transaction; a poll that brings the same answer later
        finds that end recorded, and it stands.
        """
        uid, tracking_id = transaction.uid, transaction.tracking_id
        assert uid is not None  # noqa: S101 - the verifier requires one
        record = JournalNotification(
            self._tracker.base_url, self._shop_id, uid, tracking_id, str(transaction.status),
            self._sealer.seal(raw, key=notification_key(uid)), now,
        )  # fmt: skip
        registry = self._tracker.registry
        key = None
        if tracking_id is None or registry.has_ended_a_job(uid):
            await journal.notified(record)
        else:

            def outcome(key: str) -> JournalOutcome:
                sealed = self._sealer.seal(raw, key=outcome_key(key))
                return JournalOutcome("result", 200, sealed, finished_at=now)

            created = _epoch(transaction.created_at)
            match = NotificationMatch(
                tracking_id=tracking_id,
                operations=s.operations_of(str(transaction.type)),
                created_at=created,
                skew=CLOCK_SKEW,
                outcome=outcome,
            )
            key = await journal.match_notification(record, match)
        tracked = registry.with_key(key) if key is not None else None
        self._tracker.observer.notified(transaction, tracked.job if tracked is not None else None)
        resolved = False
        if tracked is not None and tracked.job.polling:
            await self._tracker.settle(tracked, p.Done(transaction.raw))
            resolved = tracked.job.done()
        followed = self._follower.wake(transaction)
        job = tracked.job if tracked is not None else None
        return Notification(transaction, job, resolved=resolved, followed=followed, received_at=now)

    def _match(self, transaction: Transaction) -> Tracked | None:
        """The one pending job ``transaction`` can only belong to, if there is one."""
        registry = self._tracker.registry
        if transaction.tracking_id is None or registry.has_ended_a_job(transaction.uid):
            return None
        candidates = [
            tracked
            for tracked in registry.with_tracking_id(transaction.tracking_id)
            if tracked.job.polling
            and tracked.job.operation not in s.QUERIES
            and transaction.type in s.types_of(tracked.job.operation)
        ]
        if len(candidates) != 1:
            if candidates:
                logger.info(
                    "a notification for tracking_id=%r matches %d pending jobs; their polls decide",
                    transaction.tracking_id,
                    len(candidates),
                )
            return None
        tracked = candidates[0]
        created = _epoch(transaction.created_at)
        if created is not None and created < tracked.job.created_at - CLOCK_SKEW:
            return None  # an earlier transaction with the same tracking id
        return tracked


def _epoch(created: dt.datetime | None) -> float | None:
    """Epoch seconds of a transaction's creation (the gateway's clock is UTC)."""
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created.timestamp()
