"""What the simulator counts: every request it serves, and each async task's life."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from ._faults import Faults

__all__ = ["JobStats", "Stats"]


@attrs.define(slots=True)
class JobStats:
    """What the simulator saw of one async task."""

    operation: str
    created_at: float
    ready_at: float
    submits: int = 1
    status_polls: int = 0
    result_polls: int = 0
    served_at: float | None = None

    @property
    def requests(self) -> int:
        """Every request made for this task: submits and polls."""
        return self.submits + self.status_polls + self.result_polls


@attrs.define
class Stats:
    """Counters of every request served."""

    requests: Counter[str] = attrs.field(factory=Counter)
    statuses: Counter[int] = attrs.field(factory=Counter)
    jobs: dict[str, JobStats] = attrs.field(factory=dict)
    transactions: int = 0
    replays: int = 0

    def snapshot(self, faults: Faults | None = None) -> dict[str, Any]:
        """A JSON-ready summary (what ``GET /_simulator/stats`` answers)."""
        jobs = self.jobs.values()
        served = [j for j in jobs if j.served_at is not None]
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "jobs": len(self.jobs),
            "jobs_served": len(served),
            "job_requests": sum(j.requests for j in jobs),
            "requests_per_job": (sum(j.requests for j in jobs) / len(self.jobs))
            if self.jobs
            else 0.0,
            "transactions": self.transactions,
            "replays": self.replays,
            "faults": faults.counts() if faults is not None else {},
        }
