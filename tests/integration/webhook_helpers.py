"""What the webhook tests count: polls a job took, and how many times each job ended."""

from __future__ import annotations

from collections import Counter
from typing import Any

import begateway_async as bga
from begateway_async.testing import Simulator


def polls(simulator: Simulator, job: bga.Job[Any]) -> int:
    """Status and result polls the simulator served for ``job``."""
    stats = simulator.stats.jobs[job.request_id]
    return stats.status_polls + stats.result_polls


def count_ends(jobs: list[bga.Job[Any]]) -> Counter[str]:
    """A counter, filled by done callbacks, of how many times each job ended."""
    ends: Counter[str] = Counter()
    for job in jobs:
        job.add_done_callback(lambda j: ends.update([j.request_id]))
    return ends
