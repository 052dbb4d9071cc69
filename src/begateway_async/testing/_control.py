"""The simulator's own endpoints under ``/_simulator/`` (no credentials).

``GET stats``, ``GET jobs``, ``GET jobs/{request_id}``, ``GET public_key``
and ``POST 3ds/{uid}`` (the customer passes 3-D Secure).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

import attrs

from ._faults import Faults
from ._notifier import Notifier
from ._stats import Stats

__all__ = ["Controlled", "control"]


class Controlled(Protocol):
    """What the control endpoints read of a `Simulator`."""

    stats: Stats
    faults: Faults
    notifier: Notifier

    @property
    def public_key(self) -> str:
        """The key that verifies the notifications' signatures."""
        ...

    def complete_three_d_secure(self, uid: str) -> str | None:
        """The customer passed 3-D Secure; the final status, if the transaction waited."""
        ...


def control(simulator: Controlled, method: str, path: str) -> tuple[int, Any]:  # noqa: PLR0911 - a router
    """Answer a request to ``/_simulator/`` + ``path``."""
    parts = [p for p in path.split("/") if p]
    if method == "GET" and parts == ["stats"]:
        answers = Counter(str(a.answer or a.error) for a in simulator.notifier.attempts)
        return 200, {**simulator.stats.snapshot(simulator.faults), "notifications": dict(answers)}
    if method == "GET" and parts == ["public_key"]:
        return 200, {"public_key": simulator.public_key}
    if method == "GET" and parts == ["jobs"]:
        fields = ("operation", "created_at", "ready_at", "served_at")
        return 200, {
            rid: {**{f: getattr(job, f) for f in fields}, "requests": job.requests}
            for rid, job in simulator.stats.jobs.items()
        }
    if method == "GET" and len(parts) == 2 and parts[0] == "jobs":  # noqa: PLR2004
        job = simulator.stats.jobs.get(parts[1])
        if job is None:
            return 404, {"message": "Record not found"}
        return 200, {**attrs.asdict(job), "requests": job.requests}
    if method == "POST" and len(parts) == 2 and parts[0] == "3ds":  # noqa: PLR2004
        status = simulator.complete_three_d_secure(parts[1])
        if status is None:
            return 404, {"message": "No pending 3-D Secure transaction"}
        return 200, {"uid": parts[1], "status": status}
    return 404, {"message": "Not found"}
