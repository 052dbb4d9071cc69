"""Following an incomplete transaction (3-D Secure, say) to its final status.

Whichever comes first: a notification of it (`Follower.wake`, called by the
notification path), or a status query on a backoff schedule. Final
notifications are kept a while for follows that start after theirs came.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Final

import anyio

from ._clock import Timebase
from ._config import PollPolicy
from ._errors import (
    FollowUpTimeout,
    InvalidRequest,
    JobExpired,
    JobLost,
    MalformedResponse,
    SubmitIndeterminate,
    TransportError,
)
from ._models import Transaction
from ._registry import remember
from ._requests import StatusQuery, TrackingIdQuery
from ._tracker import Tracker

__all__ = ["FOLLOW_POLICY", "Follower"]

logger = logging.getLogger("begateway_async.jobs")

#: How `Gateway.follow` checks an incomplete transaction when no notification comes:
#: 5 s, then 1.5 times longer each time, at most a minute apart.
FOLLOW_POLICY: Final = PollPolicy(first_delay=5.0, factor=1.5, max_delay=60.0, adaptive=False)

#: How many final notifications are kept for follows that start after theirs arrived.
FINALS: Final = 1_024


class _Waiter:
    """One follow waiting for a final notification."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Transaction | None = None

    def __call__(self, transaction: Transaction) -> None:
        self.value = transaction
        self.event.set()


class Follower:
    """The follows of one Gateway.

    Args:
        tracker: sends the status queries.
        timebase: the Gateway's time.
        rng: the source of jitter.
    """

    def __init__(self, tracker: Tracker, timebase: Timebase, rng: random.Random) -> None:
        self._tracker = tracker
        self._timebase = timebase
        self._rng = rng
        self._waiting: dict[str, list[_Waiter]] = {}
        self._finals: dict[str, Transaction] = {}  # final notifications, by uid

    @staticmethod
    def check(transaction: object, within: object, poll: object) -> None:
        """Check `Gateway.follow`'s arguments.

        Raises:
            InvalidRequest: naming the argument that is wrong.
        """
        if not isinstance(transaction, Transaction):
            raise InvalidRequest("transaction", "must be a Transaction")
        if transaction.uid is None and transaction.tracking_id is None:
            raise InvalidRequest("transaction", "has neither a uid nor a tracking_id")
        if not (isinstance(within, int | float) and 0 < within < math.inf):
            raise InvalidRequest("within", "must be a positive number of seconds")
        if poll is not None and not isinstance(poll, PollPolicy):
            raise InvalidRequest("poll", "must be a PollPolicy")

    def wake(self, transaction: Transaction) -> int:
        """Hand a final transaction to the follows waiting on its uid; return how many."""
        uid = transaction.uid
        if uid is None or not transaction.status.final:
            return 0
        remember(self._finals, uid, transaction, FINALS)
        waiting = self._waiting.pop(uid, [])
        for wake in waiting:
            wake(transaction)
        return len(waiting)

    async def follow(
        self, transaction: Transaction, within: float, policy: PollPolicy
    ) -> Transaction:
        """Wait for a notification of ``transaction``, or query it on ``policy``'s schedule."""
        uid = transaction.uid
        waiter = _Waiter()
        if uid is not None:
            known = self._finals.get(uid)
            if known is not None:
                return known
            self._waiting.setdefault(uid, []).append(waiter)
        try:
            return await self._until_final(transaction, waiter, within, policy)
        finally:
            waiting = self._waiting.get(uid) if uid is not None else None
            if waiting is not None and waiter in waiting:
                waiting.remove(waiter)
                if not waiting:
                    del self._waiting[uid]  # type: ignore[arg-type]

    async def _until_final(
        self, transaction: Transaction, waiter: _Waiter, within: float, policy: PollPolicy
    ) -> Transaction:
        timebase = self._timebase
        deadline = timebase.monotonic() + within
        last, checks = transaction, 0
        while True:
            gap = policy.delay(checks, self._rng)
            await timebase.wait(waiter.event, min(deadline, timebase.monotonic() + gap))
            if (final := waiter.value) is not None:
                return final
            if timebase.monotonic() >= deadline:
                raise FollowUpTimeout(
                    f"the transaction is still {last.status} after {within:g} s", transaction=last
                )
            waiter.event = anyio.Event()  # the clock may have set the old one on time-out
            checks += 1
            seen = await self._look_up(last)
            if (final := waiter.value) is not None:  # it came while the query was out
                return final
            if seen is not None:
                last = seen
                if seen.status.final:
                    return seen

    async def _look_up(self, transaction: Transaction) -> Transaction | None:
        """The transaction's current state by uid (or tracking id); None when not learnt now."""
        tracker = self._tracker
        try:
            if transaction.uid is not None:
                found: Transaction | None = await tracker.query(StatusQuery(uid=transaction.uid))
            else:
                assert transaction.tracking_id is not None  # noqa: S101 - checked by follow
                listed = await tracker.query(TrackingIdQuery(tracking_id=transaction.tracking_id))
                same = [tx for tx in listed if tx.type == transaction.type]
                found = same[0] if same else None
        except (SubmitIndeterminate, TransportError, MalformedResponse, JobLost, JobExpired) as exc:
            logger.info("a status query of an incomplete transaction failed: %s", exc)
            return None
        return found
