"""The registry of a Gateway's pending jobs: by request id, by tracking id, and their claims.

`Tracked` is what the poll loop keeps of one pending job beside the job
itself. The index by tracking id is built on the first notification (no
cost to those who never get one) and kept up to date from then on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final, TypeVar

import anyio

from ._jobs import Job

__all__ = ["Registry", "Tracked", "remember"]

T = TypeVar("T")

#: How many uids of ended jobs are remembered: a notification of one of them
#: never ends another job.
ENDED_UIDS: Final = 16_384


def remember(memory: dict[str, T], key: str, value: T, limit: int) -> None:
    """Keep ``key`` in a bounded insertion-ordered dict (the oldest goes first)."""
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > limit:
        del memory[next(iter(memory))]


class Tracked:
    """One pending job as the poll loop sees it.

    Attributes:
        job: the job.
        url: what its next poll requests.
        notified: its request names a ``notification_url``.
        started: epoch seconds its task began at the gateway, as far as this
            process saw: when the acknowledgement came (a submit that waited
            for a slot in a burst began only then), or the journal's creation
            time for a job picked up. The cadence counts from it.
        running_at: seconds after ``started`` it was last seen running, for the
            cadence (``0`` never, negative when it must teach nothing).
        journal_key: its journal entry's key; None for the library's own queries.
        lost_reply: an earlier poll may have reached the gateway and lost its reply.
        failures: passing failures in a row (the backoff's count).
        hold: while it waits to look whether a plan came before its first poll
            (see `Pacing.first`), when (monotonic) the backoff would poll it.
    """

    __slots__ = (
        "failures",
        "hold",
        "job",
        "journal_key",
        "lost_reply",
        "notified",
        "running_at",
        "started",
        "url",
    )

    def __init__(
        self,
        job: Job[Any],
        url: str,
        *,
        notified: bool,
        running_at: float,
        journal_key: str | None,
        started: float | None = None,
    ) -> None:
        self.hold: float | None = None
        self.job = job
        self.started = job.created_at if started is None else started
        self.url = url
        self.notified = notified
        self.running_at = running_at
        self.journal_key = journal_key
        self.lost_reply = False
        self.failures = 0

    @property
    def polling(self) -> bool:
        """Whether the job still wants its polls (the scheduler skips it otherwise)."""
        return self.job.polling


class Registry:
    """The pending jobs of one Gateway."""

    def __init__(self) -> None:
        self._jobs: dict[str, Tracked] = {}
        self._idle = anyio.Event()
        self._by_tracking: dict[str, list[Tracked]] | None = None
        self._by_key: dict[str, Tracked] | None = None
        self._ended_uids: dict[str, None] = {}
        # Request ids whose answer (a poll's or a notification's) is being
        # journalled, each with the event set when that is over.
        #: request_id -> the event its waiters wait on (made by the first waiter only).
        self._claims: dict[str, anyio.Event | None] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, request_id: str) -> Tracked | None:
        """The pending job of ``request_id``, if there is one."""
        return self._jobs.get(request_id)

    def pending(self) -> list[Tracked]:
        """Every pending job, oldest first."""
        return list(self._jobs.values())

    def add(self, tracked: Tracked) -> None:
        """Register a job that is now polled."""
        if not self._jobs:
            self._idle = anyio.Event()
        self._jobs[tracked.job.request_id] = tracked
        if self._by_tracking is not None:
            self._index(tracked)
        if self._by_key is not None and tracked.journal_key is not None:
            self._by_key[tracked.journal_key] = tracked

    def forget(self, job: Job[Any]) -> None:
        """Drop an ended (or abandoned) job; nothing happens for a job not registered."""
        tracked = self._jobs.get(job.request_id)
        if tracked is None or tracked.job is not job:
            return
        del self._jobs[job.request_id]
        if not self._jobs:
            self._idle.set()
        if self._by_key is not None and tracked.journal_key is not None:
            self._by_key.pop(tracked.journal_key, None)
        if self._by_tracking is not None and job.tracking_id is not None:
            same = self._by_tracking.get(job.tracking_id)
            if same is not None and tracked in same:
                same.remove(tracked)
                if not same:
                    del self._by_tracking[job.tracking_id]

    async def drained(self) -> None:
        """Return once no job is pending (also none that started while waiting)."""
        while self._jobs:
            await self._idle.wait()

    def running_for(self, operation: str) -> list[float]:
        """How long each pending job of ``operation`` has been seen running (for the cadence)."""
        return [
            t.running_at
            for t in self._jobs.values()
            if t.running_at > 0 and t.job.operation == operation
        ]

    def with_key(self, key: str) -> Tracked | None:
        """The pending job of the journal entry ``key`` (the index is built on first use)."""
        if self._by_key is None:
            self._by_key = {t.journal_key: t for t in self._jobs.values() if t.journal_key}
        return self._by_key.get(key)

    # --- by tracking id ------------------------------------------------------------------

    def with_tracking_id(self, tracking_id: str) -> list[Tracked]:
        """The pending jobs carrying ``tracking_id`` (the index is built on first use)."""
        if self._by_tracking is None:
            self._by_tracking = {}
            for tracked in self._jobs.values():
                self._index(tracked)
        return list(self._by_tracking.get(tracking_id, ()))

    def _index(self, tracked: Tracked) -> None:
        assert self._by_tracking is not None  # noqa: S101 - built by the caller
        tracking_id = tracked.job.tracking_id
        if tracking_id is not None:
            self._by_tracking.setdefault(tracking_id, []).append(tracked)

    def ended_by(self, uid: str) -> None:
        """Remember that the transaction ``uid`` ended a job (the oldest are forgotten)."""
        remember(self._ended_uids, uid, None, ENDED_UIDS)

    def has_ended_a_job(self, uid: str | None) -> bool:
        """Whether the transaction ``uid`` already ended a job here."""
        return uid in self._ended_uids

    # --- claims --------------------------------------------------------------------------

    def claimed(self, job: Job[Any]) -> bool:
        """Whether an answer for ``job`` is being journalled right now."""
        return job.request_id in self._claims

    @contextlib.contextmanager
    def claim(self, job: Job[Any]) -> Iterator[None]:
        """Hold ``job`` while one answer for it is journalled: another waits, or is dropped."""
        claims = self._claims
        claims[job.request_id] = None  # no event unless someone waits: most claims see none
        try:
            yield
        finally:
            event = claims.pop(job.request_id)
            if event is not None:
                event.set()

    async def unclaimed(self, job: Job[Any]) -> None:
        """Return once no answer for ``job`` is being journalled."""
        claims = self._claims
        while job.request_id in claims:
            event = claims[job.request_id]
            if event is None:
                event = claims[job.request_id] = anyio.Event()
            await event.wait()
