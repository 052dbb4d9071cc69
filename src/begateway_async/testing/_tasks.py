"""The simulator's async tasks, and the ``RequestID`` keys it has seen.

A task is made at submit and knows when it is ready: an answer is decided
when it is asked for, so a hundred thousand pending tasks cost only their
records. ``processing`` until then; then the result, kept 24 hours from the
task's creation, or a non-200 error body served once; then 404 ``unknown``.
A ``RequestID`` seen in the last 24 hours answers with what its first
request got.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

import attrs

from ._books import Outcome
from ._ledger import Ledger
from ._stats import JobStats, Stats

__all__ = ["RETENTION", "Task", "Tasks", "ack"]

#: Results, and RequestID keys, are kept this long.
RETENTION: Final = 24 * 3600.0

#: What a RequestID stands for: the task it created (async), or the answer it got (sync).
Replayed = str | tuple[int, bytes]


@attrs.define(slots=True)
class Task:
    """One async task."""

    request_id: str
    shop: str
    operation: str
    outcome: Outcome
    api_version: int
    stats: JobStats
    internal_error: bool = False
    gone: bool = False


def ack(request_id: str, base_url: str) -> dict[str, Any]:
    """The acknowledgement of a task."""
    return {
        "status": "processing",
        "request_id": request_id,
        "status_url": f"{base_url}/async/status/{request_id}",
        "response_url": f"{base_url}/async/result/{request_id}",
    }


class Tasks:
    """Every async task of one simulator, and the keys seen.

    Args:
        ledger: renders a task's outcome when it is served.
        stats: where each task's counters are kept.
        clock: epoch seconds now.
        too_early: whether a poll of a task still processing answers 425 (a fault).
    """

    def __init__(
        self,
        ledger: Ledger,
        stats: Stats,
        clock: Callable[[], float],
        too_early: Callable[[str], bool],
    ) -> None:
        self._ledger = ledger
        self._stats = stats
        self._clock = clock
        self._too_early = too_early
        self._tasks: dict[str, Task] = {}
        self._keys: dict[tuple[str, str], tuple[float, Replayed]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, request_id: str) -> Task | None:
        """The task of ``request_id``, if there is one."""
        return self._tasks.get(request_id)

    def replayed(self, shop: str, key: str | None) -> Replayed | None:
        """What the ``RequestID`` ``key`` of ``shop`` stands for, if it was seen in 24 hours."""
        if not key:
            return None
        seen = self._keys.get((shop, key))
        if seen is None or self._clock() - seen[0] >= RETENTION:
            return None
        self._stats.replays += 1
        return seen[1]

    def remember(self, shop: str, key: str, at: float, value: Replayed) -> None:
        """Keep what the ``RequestID`` ``key`` got, for 24 hours from ``at``."""
        self._keys[shop, key] = (at, value)

    def create(
        self,
        *,
        shop: str,
        operation: str,
        outcome: Outcome,
        api_version: int,
        duration: float,
        internal_error: bool,
        key: str | None,
    ) -> Task:
        """Make a task that is ready ``duration`` seconds from now."""
        now = self._clock()
        request_id = str(uuid.uuid4())
        stats = JobStats(operation=operation, created_at=now, ready_at=now + duration)
        task = Task(
            request_id, shop, operation, outcome, api_version, stats, internal_error=internal_error
        )
        self._tasks[request_id] = task
        self._stats.jobs[request_id] = stats
        if key:
            self.remember(shop, key, now, request_id)
        return task

    def poll(self, endpoint: str, request_id: str, base_url: str) -> tuple[int, Any]:
        """Answer a poll of ``status_url`` (``endpoint="status"``) or ``response_url``."""
        now = self._clock()
        task = self._tasks.get(request_id)
        unknown = 404, {"status": "unknown", "request_id": request_id}
        if task is None:
            return unknown
        stats = task.stats
        if endpoint == "status":
            stats.status_polls += 1
        else:
            stats.result_polls += 1
        if task.gone or now >= stats.created_at + RETENTION:
            return unknown
        if now < stats.ready_at:
            status = 425 if self._too_early(endpoint) else 200
            return status, {"status": "processing", "request_id": request_id}
        outcome = task.outcome
        if endpoint == "status" and not task.internal_error:
            return 200, {
                "status": "completed",
                "request_id": request_id,
                "response_url": f"{base_url}/async/result/{request_id}",
            }
        if stats.served_at is None:
            stats.served_at = now
        if not outcome.ok:
            task.gone = True  # a non-200 answer is served once
        return outcome.status_code, self._ledger.render(
            outcome, api_version=task.api_version, base_url=base_url
        )
