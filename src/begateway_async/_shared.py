"""`SharedJournal`: the part of the journal protocol several workers need, and its errors.

A journal that several Gateways (worker processes, hosts) use at once adds
to `Journal`:

- **a worker and its lease**: `join` registers the Gateway as a worker with a
  lease; one `heartbeat` renews it (every ⅓ of the lease at most, by the
  database's clock). A worker whose heartbeat finds its lease expired drops
  its jobs and joins again: another worker may have taken its entries.
- **claims**: every entry belongs to one worker at a time, with an *epoch*
  that grows at each claim. `claim` takes the unfinished entries that are
  nobody's (released) or whose owner's lease expired (a dead worker's):
  taking over is the claim itself, never a sweeper's job. `unfinished`
  gives this worker's own unfinished entries and claims the others' (what
  `Gateway.resume_all` gets is its own). `hand_back` gives up one entry
  this worker stopped working on (a submit left undetermined, a job
  stopped by a surprise): any worker's next claim takes it.
- **first writer wins**: `finished` records an outcome only if there is
  none yet, and returns the outcome that stands, which the job resolves
  with. The gateway's own answers (a result, a one-shot error body, a
  refusal) are recorded by whichever worker holds one first; a worker's
  own conclusions (not sent, lost, expired) only under the epoch of its
  claim, so a stale owner cannot write them.
- **notifications anywhere**: `match_notification` records a notification,
  finds the one unfinished entry it belongs to (the rule `Gateway.deliver`
  uses), records its outcome and wakes the worker that owns it, in one
  transaction; `woken` gives a worker the keys of its entries that ended
  elsewhere.
- `release` hands a closing worker's unfinished entries back at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from ._journal import Journal
from ._records import JournalEntry, JournalError, JournalNotification, JournalOutcome

__all__ = ["DuplicateIntent", "LeaseLost", "NotificationMatch", "SharedJournal"]


class LeaseLost(JournalError):  # noqa: N818 - names what happened, like the other errors
    """This worker's lease or claim is gone: another worker may hold the entry now."""


class DuplicateIntent(JournalError):  # noqa: N818
    """The submit is on record already, or another one like it is; nothing was sent.

    Raised by a shared journal for a ``RequestID`` whose entry another live
    worker holds, or that ended already (`Gateway.replay` gives its end),
    and for a second submit of the same operation and tracking id when its
    ``one_intent_per_tracking_id`` guard is on.

    Attributes:
        key: the ``RequestID`` of the entry already on record.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class NotificationMatch:
    """What `SharedJournal.match_notification` needs to find a notification's entry.

    Attributes:
        tracking_id: the transaction's tracking id.
        operations: the operations whose submit may have made a transaction of its type.
        created_at: epoch seconds of the transaction's creation, if known: an
            entry created after it (by more than ``skew``) is not its.
        skew: how far the gateway's clock and ours may disagree.
        outcome: the outcome to record for the entry found, given its key
            (its body sealed for that key).
    """

    __slots__ = ("created_at", "operations", "outcome", "skew", "tracking_id")

    def __init__(
        self,
        *,
        tracking_id: str,
        operations: Sequence[str],
        created_at: float | None,
        skew: float,
        outcome: Callable[[str], JournalOutcome],
    ) -> None:
        self.tracking_id = tracking_id
        self.operations = tuple(operations)
        self.created_at = created_at
        self.skew = skew
        self.outcome = outcome


@runtime_checkable
class SharedJournal(Journal, Protocol):
    """A `Journal` several workers share; see the module's description."""

    #: Seconds a worker's lease lasts without a heartbeat.
    lease: float

    async def join(self, gateway: str, shop_id: str) -> None:
        """Register as a worker of ``gateway`` and ``shop_id`` with a fresh lease."""

    async def heartbeat(self) -> bool:
        """Renew the lease; False if it had expired (this worker's entries may be taken)."""

    async def claim(self, limit: int) -> list[JournalEntry]:
        """Take up to ``limit`` entries that are nobody's or a dead worker's, oldest first."""

    async def release(self) -> None:
        """Hand this worker's unfinished entries back and leave."""

    async def hand_back(self, key: str) -> None:
        """Give up this worker's unfinished entry ``key``: the next claim takes it."""

    async def finished(self, key: str, outcome: JournalOutcome) -> JournalOutcome | None:
        """Record ``outcome`` unless one is on record; return the one that stands.

        Raises:
            LeaseLost: ``outcome`` is this worker's conclusion, and the entry
                is another worker's now (it has no outcome yet).
        """

    async def match_notification(
        self, notification: JournalNotification, match: NotificationMatch
    ) -> str | None:
        """Record ``notification``; end the one entry it belongs to; return that entry's key."""

    async def woken(self, timeout: float) -> list[str] | None:
        """Keys of this worker's entries that ended elsewhere, waiting up to ``timeout``.

        None after the listener reconnected (wake-ups may have been missed:
        check every pending key with `outcomes`).
        """

    async def outcomes(self, keys: Sequence[str]) -> dict[str, JournalOutcome]:
        """The recorded outcomes of those of ``keys`` that have one."""
