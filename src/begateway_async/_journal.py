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
store several processes share implements `SharedJournal` too (see
`_shared`): `PostgresJournal` (``journal="postgresql://..."``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from ._records import JournalEntry, JournalNotification, JournalOutcome

__all__ = ["Journal", "MemoryJournal"]


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

    async def finished(self, key: str, outcome: JournalOutcome) -> JournalOutcome | None:
        """Record how the submit ``key`` ended.

        Returns:
            None when ``outcome`` is recorded (or the entry is gone); a shared
            journal returns the outcome another worker recorded first, which
            then stands (see `SharedJournal`).
        """

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
