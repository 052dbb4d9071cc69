"""A Gateway's part in a shared journal: its lease, taking over, wake-ups, and notifications.

While the Gateway is open, two loops run beside its polls:

- **the heartbeat**, every ⅓ of the journal's lease, on fixed deadlines
  (real time: the lease is counted by the database's clock), and again
  within a second after a beat that failed. Each beat renews the lease,
  then (in a task of its own, so a long claim never delays a beat) claims
  what dead workers left, and what closing workers released or live ones
  handed back, and picks each entry up as `Gateway.resume_all` would:
  taking over is the claim, at every beat, not bounded by any in-flight
  cap. Each job taken over is given to ``on_take_over``. A beat that finds
  the lease expired drops this worker's jobs (another worker may hold
  their entries now) and joins again.
- **the wake-ups**: keys of this worker's entries that another worker ended
  (a notification delivered there) resolve the jobs here at once, with the
  recorded end, and their polls stop. After the listener reconnects, every
  pending key is checked, since wake-ups may have been missed meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import anyio
import anyio.abc

from ._jobs import Job
from ._records import JournalEntry, JournalError
from ._recovery import Recovery
from ._shared import SharedJournal
from ._submit import Submitter
from ._tracker import Tracker

__all__ = ["Sharing"]

logger = logging.getLogger("begateway_async.journal")

#: Entries claimed per query while taking over (the beat repeats until none is left).
CLAIM_BATCH: Final = 500
#: Seconds one wait for wake-ups lasts; seconds between tries while the listener fails.
WAKE_WAIT: Final = 1.0
#: Seconds until the next try after a heartbeat failed (at most a third of the interval).
BEAT_RETRY: Final = 1.0


class Sharing:
    """The worker side of a Gateway on a `SharedJournal`.

    Args:
        journal: the shared journal.
        tracker: the pending jobs.
        recovery: picks up the entries taken over.
        submitter: opens the recorded ends.
        on_take_over: called with each job taken over, once it is under way.
    """

    def __init__(
        self,
        journal: SharedJournal,
        *,
        tracker: Tracker,
        recovery: Recovery,
        submitter: Submitter,
        on_take_over: Callable[[Job[Any]], object] | None = None,
    ) -> None:
        self._journal = journal
        self._on_take_over = on_take_over
        self._taking = False
        self._tracker = tracker
        self._recovery = recovery
        self._submitter = submitter
        #: Entries taken over from other workers since the Gateway opened.
        self.taken_over = 0

    async def join(self) -> None:
        """Register this Gateway as a worker (before anything is submitted)."""
        await self._journal.join(self._tracker.base_url, self._submitter.shop_id)

    async def run(self) -> None:
        """Beat and listen until cancelled (the Gateway runs this inside ``async with``)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._beat, tg)
            tg.start_soon(self._listen)

    async def leave(self) -> None:
        """Hand the unfinished entries back: a live worker takes them at its next beat."""
        try:
            await self._journal.release()
        except JournalError:
            logger.exception("cannot release this worker's entries; they wait for its lease")

    # --- the heartbeat ---------------------------------------------------------------

    async def _beat(self, tg: anyio.abc.TaskGroup) -> None:
        interval = self._journal.lease / 3
        due = anyio.current_time()
        while True:
            try:
                if not await self._journal.heartbeat():
                    dropped = self._tracker.abandon("this worker's lease ran out")
                    logger.warning(
                        "the lease ran out: %d jobs dropped (their entries may be another "
                        "worker's now); joining again",
                        dropped,
                    )
                    await self.join()
                due += interval
                if not self._taking:
                    self._taking = True
                    tg.start_soon(self._take_over, tg)
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the beats, nor the polls
                _failed("the heartbeat", exc)
                due = anyio.current_time() + min(BEAT_RETRY, interval / 3)
            # Beats missed (a stalled process) are not made up in a burst.
            await anyio.sleep_until(max(due, anyio.current_time()))

    async def _take_over(self, tg: anyio.abc.TaskGroup) -> None:
        try:
            while entries := await self._journal.claim(CLAIM_BATCH):
                self.taken_over += len(entries)
                logger.info("took over %d entries of other workers", len(entries))
                for entry in entries:
                    if entry.key in self._tracker.sending:
                        continue  # its send here (begun under a lost lease) ends it: no second
                    # Each in a task of its own: a re-send must not hold the others up.
                    tg.start_soon(self._pick_up, entry)
                if len(entries) < CLAIM_BATCH:
                    return
        except Exception as exc:  # noqa: BLE001 - the next beat claims again
            _failed("taking over", exc)
        finally:
            self._taking = False

    async def _pick_up(self, entry: JournalEntry) -> None:
        job = await self._recovery.pick_up(entry)
        if self._on_take_over is not None:
            try:
                self._on_take_over(job)
            except Exception:
                logger.exception("on_take_over raised (the job goes on)")

    # --- wake-ups --------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                keys = await self._journal.woken(WAKE_WAIT)
                if keys is None:  # reconnected: wake-ups may have been missed
                    registry = self._tracker.registry
                    keys = [t.journal_key for t in registry.pending() if t.journal_key]
                await self._settle(keys)
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the polls with it
                _failed("the wake-up listener", exc)
                await anyio.sleep(WAKE_WAIT)

    async def _settle(self, keys: Sequence[str]) -> None:
        registry = self._tracker.registry
        mine = [key for key in keys if registry.with_key(key) is not None]
        if not mine:
            return
        for key, outcome in (await self._journal.outcomes(mine)).items():
            tracked = registry.with_key(key)
            if tracked is not None and tracked.job.polling:
                logger.debug("request_id=%s ended by another worker", tracked.job.request_id)
                await self._tracker.settle_recorded(tracked, self._submitter.opened(key, outcome))


def _failed(what: str, exc: Exception) -> None:
    """Log a loop's failure: a journal's error in one line, anything else with its traceback."""
    logger.warning("%s failed: %s", what, exc, exc_info=not isinstance(exc, JournalError))
